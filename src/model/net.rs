//! Energy networks as functions of explicit, named parameters, so that the model θ and its
//! frozen snapshot θ̄ share one definition.
//!
//! MLP: data_dim → hidden_width × hidden_layers → 1, no bias on the last layer (a constant
//! shift of E trades exactly against the NCE offset c). Its input gradient is computed by hand
//! (no autograd graph), which is both faster and guarantees no parameter gradient is built.
//!
//! CONV (IGEBM-style): 3×3 conv (C → w), then `hidden_layers` stride-2 3×3 convs doubling the
//! channels, SiLU/LeakyReLU after each, global sum pooling, linear to a scalar without bias.
//!
//! Layers are named as PyTorch's `state_dict()` names the same network written as one
//! `torch.nn.Sequential` called `net` (tests/python/twin.py): the MLP's linear layers are
//! `net.0`, `net.2`, …, `net.{2L}` (activations at the odd indices); the conv net's
//! convolutions are `net.0`, `net.2`, …, `net.{2L}`, the sum pooling `net.{2L+2}` and the
//! final linear layer `net.{2L+3}`. Each has `.weight` and, except the last, `.bias`.
//!
//! Every operation on a batch uses tch's fallible `f_` functions: a libtorch failure (an
//! out-of-memory error on a large batch, say) comes back as an error, not a panic.
use crate::abi::config::{SanceActivation, SanceArch, SanceConfig};
use crate::model::rng::Rng;
use tch::{Device, Kind, TchError, Tensor};

type TResult<T> = Result<T, TchError>;

/// A copy of `t` in new storage, outside any autograd graph (a fallible `detach().copy()`).
pub(crate) fn copy_of(t: &Tensor) -> TResult<Tensor> {
    // Under no_grad, so that the copy of a parameter does not require grad itself.
    tch::no_grad(|| t.f_detach_copy())
}

const LEAKY_SLOPE: f64 = 0.2;

/// One weighted layer: a linear map or a 3×3 convolution.
#[derive(Debug)]
pub struct Layer {
    /// Name of the layer inside the network, e.g. "net.0".
    pub name: String,
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

/// The parameters of one network (θ or θ̄), layer by layer.
#[derive(Debug)]
pub struct Params {
    pub layers: Vec<Layer>,
}

impl Params {
    /// Every tensor with its name ("net.0.weight", "net.0.bias", …), in a fixed order: each
    /// layer's weight, then its bias.
    pub fn named(&self) -> Vec<(String, &Tensor)> {
        let mut v = Vec::new();
        for l in &self.layers {
            v.push((format!("{}.weight", l.name), &l.weight));
            if let Some(b) = &l.bias {
                v.push((format!("{}.bias", l.name), b));
            }
        }
        v
    }

    /// The tensors in [`Params::named`]'s order.
    pub fn iter(&self) -> impl Iterator<Item = &Tensor> {
        self.layers.iter().flat_map(|l| std::iter::once(&l.weight).chain(l.bias.as_ref()))
    }

    /// The tensors in [`Params::named`]'s order, mutably.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Tensor> {
        self.layers.iter_mut().flat_map(|l| std::iter::once(&mut l.weight).chain(l.bias.as_mut()))
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// The same layers with every tensor replaced by `f(tensor)`.
    pub fn try_map(&self, mut f: impl FnMut(&Tensor) -> TResult<Tensor>) -> TResult<Params> {
        let layers = self
            .layers
            .iter()
            .map(|l| {
                Ok(Layer {
                    name: l.name.clone(),
                    weight: f(&l.weight)?,
                    bias: l.bias.as_ref().map(&mut f).transpose()?,
                })
            })
            .collect::<TResult<_>>()?;
        Ok(Params { layers })
    }

    /// A copy detached from any graph (for θ̄ and for the sampler).
    pub fn detached_copy(&self) -> TResult<Params> {
        self.try_map(copy_of)
    }

    /// Views detached from the graph, sharing storage (no copy).
    pub fn detached(&self) -> Params {
        self.try_map(|t| Ok(t.detach())).expect("detach does not fail")
    }
}

impl<'a> IntoIterator for &'a Params {
    type Item = &'a Tensor;
    type IntoIter = Box<dyn Iterator<Item = &'a Tensor> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Net {
    pub arch: SanceArch,
    pub activation: SanceActivation,
    /// Shape of one sample (MLP: [D]; CONV: [C, H, W]).
    in_shape: [i64; 3],
    hidden_width: i64,
    hidden_layers: i64,
}

fn act(x: &Tensor, a: SanceActivation) -> TResult<Tensor> {
    match a {
        SanceActivation::Silu => x.f_silu(),
        SanceActivation::LeakyRelu => x.f_maximum(&x.f_mul_scalar(LEAKY_SLOPE)?),
    }
}

/// Derivative of the activation at pre-activation `z`.
fn act_grad(z: &Tensor, a: SanceActivation) -> TResult<Tensor> {
    match a {
        SanceActivation::Silu => {
            // silu'(z) = s + z·s·(1 − s) = s·(z·(1 − s) + 1), s = σ(z)
            let s = z.f_sigmoid()?;
            let one_minus_s = s.f_sub_scalar(1.0)?.f_neg()?;
            s.f_mul(&z.f_mul(&one_minus_s)?.f_add_scalar(1.0)?)
        }
        SanceActivation::LeakyRelu => {
            z.f_gt(0.0)?.f_to_kind(z.kind())?.f_mul_scalar(1.0 - LEAKY_SLOPE)?.f_add_scalar(LEAKY_SLOPE)
        }
    }
}

/// One weighted layer's shape: its weight, whether it has a bias, and its fan-in.
struct Shape {
    name: String,
    weight: Vec<i64>,
    bias: bool,
    fan_in: i64,
}

impl Net {
    pub fn from_config(c: &SanceConfig) -> Net {
        let in_shape = match c.arch {
            SanceArch::Mlp => [c.data_dim as i64, 1, 1],
            SanceArch::Conv => [c.channels as i64, c.height as i64, c.width as i64],
        };
        Net {
            arch: c.arch,
            activation: c.activation,
            in_shape,
            hidden_width: c.hidden_width as i64,
            hidden_layers: c.hidden_layers as i64,
        }
    }

    /// The weighted layers, in order, with their names (see the module's doc).
    fn layer_shapes(&self) -> Vec<Shape> {
        let mut v = Vec::new();
        let l = self.hidden_layers;
        match self.arch {
            SanceArch::Mlp => {
                let mut fan_in = self.in_shape[0];
                for i in 0..l {
                    let weight = vec![self.hidden_width, fan_in];
                    v.push(Shape { name: format!("net.{}", 2 * i), weight, bias: true, fan_in });
                    fan_in = self.hidden_width;
                }
                v.push(Shape { name: format!("net.{}", 2 * l), weight: vec![1, fan_in], bias: false, fan_in });
            }
            SanceArch::Conv => {
                let mut cin = self.in_shape[0];
                let mut cout = self.hidden_width;
                for i in 0..=l {
                    if i > 0 {
                        cout *= 2;
                    }
                    let weight = vec![cout, cin, 3, 3];
                    v.push(Shape { name: format!("net.{}", 2 * i), weight, bias: true, fan_in: cin * 9 });
                    cin = cout;
                }
                // net.{2L+1} is the last activation, net.{2L+2} the sum pooling.
                v.push(Shape { name: format!("net.{}", 2 * l + 3), weight: vec![1, cin], bias: false, fan_in: cin });
            }
        }
        v
    }

    /// Names of the parameter tensors, in [`Params::named`]'s order.
    pub fn param_names(&self) -> Vec<String> {
        let mut v = Vec::new();
        for s in self.layer_shapes() {
            v.push(format!("{}.weight", s.name));
            if s.bias {
                v.push(format!("{}.bias", s.name));
            }
        }
        v
    }

    /// PyTorch's default init (kaiming-uniform, a = √5): U(−1/√fan_in, 1/√fan_in) for weights
    /// and biases alike. Tensors are drawn in [`Params::named`]'s order.
    pub fn init_params(&self, rng: &mut Rng, kind: Kind, device: Device) -> TResult<Params> {
        let mut draw = |shape: &[i64], fan_in: i64| -> TResult<Tensor> {
            let bound = 1.0 / (fan_in as f64).sqrt();
            let u = rng.rand(shape, kind, device)?;
            Ok(u.f_mul_scalar(2.0 * bound)?.f_sub_scalar(bound)?.set_requires_grad(true))
        };
        let mut layers = Vec::new();
        for s in self.layer_shapes() {
            let weight = draw(&s.weight, s.fan_in)?;
            let bias = if s.bias { Some(draw(&s.weight[..1], s.fan_in)?) } else { None };
            layers.push(Layer { name: s.name, weight, bias });
        }
        Ok(Params { layers })
    }

    /// E(x) for a batch: `x` is [N, D] (MLP) or [N, C, H, W] (CONV); returns [N].
    pub fn energy(&self, p: &Params, x: &Tensor) -> TResult<Tensor> {
        let (hidden, out) = p.layers.split_at(p.layers.len() - 1);
        let mut a = x.shallow_clone();
        match self.arch {
            SanceArch::Mlp => {
                for l in hidden {
                    a = act(&self.linear(l, &a)?, self.activation)?;
                }
            }
            SanceArch::Conv => {
                for (i, l) in hidden.iter().enumerate() {
                    let stride = if i == 0 { 1 } else { 2 };
                    a = a.f_conv2d(&l.weight, l.bias.as_ref(), [stride, stride], [1, 1], [1, 1], 1)?;
                    a = act(&a, self.activation)?;
                }
                a = a.f_sum_dim_intlist([2i64, 3].as_slice(), false, a.kind())?;
            }
        }
        a.f_matmul(&out[0].weight.f_tr()?)?.f_squeeze_dim(1)
    }

    /// x·Wᵀ + b.
    fn linear(&self, l: &Layer, x: &Tensor) -> TResult<Tensor> {
        match &l.bias {
            Some(b) => b.f_addmm(x, &l.weight.f_tr()?),
            None => x.f_matmul(&l.weight.f_tr()?),
        }
    }

    /// E(x) and ∇ₓE(x), with no gradient built or kept for any parameter.
    pub fn energy_and_grad(&self, p: &Params, x: &Tensor) -> TResult<(Tensor, Tensor)> {
        match self.arch {
            SanceArch::Mlp => tch::no_grad(|| self.mlp_energy_and_grad(p, x)),
            SanceArch::Conv => {
                let detached = p.detached();
                let xg = x.detach().set_requires_grad(true);
                // Callers may be inside no_grad (the sampler is): the graph must be built, and
                // summed, with grad mode on, or libtorch has nothing to differentiate.
                tch::with_grad(|| {
                    let e = self.energy(&detached, &xg)?;
                    let mut g = Tensor::f_run_backward(&[e.f_sum(e.kind())?], &[&xg], false, false)?;
                    Ok((e.detach(), g.remove(0)))
                })
            }
        }
    }

    /// Hand-written backward pass of the MLP with respect to its input.
    fn mlp_energy_and_grad(&self, p: &Params, x: &Tensor) -> TResult<(Tensor, Tensor)> {
        let (hidden, out) = p.layers.split_at(p.layers.len() - 1);
        let mut pre = Vec::with_capacity(hidden.len());
        let mut a = x.shallow_clone();
        for l in hidden {
            let z = self.linear(l, &a)?;
            a = act(&z, self.activation)?;
            pre.push(z);
        }
        let w_out = &out[0].weight; // [1, H]
        let e = a.f_matmul(&w_out.f_tr()?)?.f_squeeze_dim(1)?;
        // dE/da_L = w_out for every row; walk back through the layers.
        let mut g = w_out.f_expand([x.size()[0], w_out.size()[1]], false)?;
        for (l, z) in hidden.iter().zip(&pre).rev() {
            g = g.f_mul(&act_grad(z, self.activation)?)?.f_matmul(&l.weight)?;
        }
        Ok((e, g))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_grad_matches_autograd(arch: SanceArch, activation: SanceActivation) {
        let mut c = SanceConfig { arch, activation, ..Default::default() };
        c.hidden_width = 8;
        c.channels = 2;
        c.height = 6;
        c.width = 5;
        c.data_dim = 3;
        let net = Net::from_config(&c);
        let mut rng = Rng::new(3);
        let p = net.init_params(&mut rng, Kind::Double, Device::Cpu).unwrap();
        let mut shape = vec![7i64];
        shape.extend(c.sample_shape());
        let x = rng.randn(&shape, Kind::Double, Device::Cpu).unwrap();
        let (e, g) = net.energy_and_grad(&p, &x).unwrap();
        let xg = x.detach().set_requires_grad(true);
        let e2 = net.energy(&p, &xg).unwrap();
        let g2 = Tensor::run_backward(&[e2.sum(Kind::Double)], &[&xg], false, false).remove(0);
        assert!(e.allclose(&e2.detach(), 1e-12, 1e-12, false));
        let err = (&g - &g2).abs().max().double_value(&[]);
        assert!(err < 1e-10, "{arch:?}/{activation:?}: grad error {err}");
        assert!(!e.requires_grad() && !g.requires_grad());
    }

    #[test]
    fn mlp_input_gradient_matches_autograd() {
        check_grad_matches_autograd(SanceArch::Mlp, SanceActivation::Silu);
        check_grad_matches_autograd(SanceArch::Mlp, SanceActivation::LeakyRelu);
    }

    #[test]
    fn conv_input_gradient_matches_autograd() {
        check_grad_matches_autograd(SanceArch::Conv, SanceActivation::Silu);
        check_grad_matches_autograd(SanceArch::Conv, SanceActivation::LeakyRelu);
    }

    #[test]
    fn input_gradient_builds_no_parameter_gradient() {
        let c = SanceConfig::default();
        let net = Net::from_config(&c);
        let mut rng = Rng::new(0);
        let p = net.init_params(&mut rng, Kind::Float, Device::Cpu).unwrap();
        let x = rng.randn(&[5, 2], Kind::Float, Device::Cpu).unwrap();
        let (e, g) = net.energy_and_grad(&p, &x).unwrap();
        assert!(!e.requires_grad() && !g.requires_grad());
        assert!(p.iter().all(|t| !t.grad().defined()));
    }

    #[test]
    fn layers_are_named_as_a_torch_sequential() {
        let mlp = Net::from_config(&SanceConfig { hidden_layers: 2, ..Default::default() });
        assert_eq!(
            mlp.param_names(),
            ["net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias", "net.4.weight"]
        );
        let conv = SanceConfig { arch: SanceArch::Conv, hidden_layers: 1, ..Default::default() };
        let conv = Net::from_config(&conv);
        assert_eq!(conv.param_names(), ["net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias", "net.5.weight"]);
        let p = conv.init_params(&mut Rng::new(0), Kind::Float, Device::Cpu).unwrap();
        let names: Vec<String> = p.named().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, conv.param_names());
    }
}

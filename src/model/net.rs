//! Energy networks as functions of explicit, named parameters, so that the model θ and its
//! frozen snapshot θ̄ share one definition.
//!
//! MLP: data_dim → hidden_width × hidden_layers → 1, no bias on the last layer (a constant
//! shift of E trades exactly against the NCE offset c). The input gradients of both nets are
//! computed by hand ([`MlpGrad`], [`ConvGrad`]; no autograd graph), which is faster and
//! guarantees no parameter gradient is built.
//!
//! CONV (IGEBM-style): 3×3 conv (C → w), then `hidden_layers` stride-2 3×3 convs doubling the
//! channels, SiLU/LeakyReLU after each, then global sum pooling (`conv_head` SUM) or flattening
//! (DENSE), linear to a scalar without bias.
//!
//! Layers are named as PyTorch's `state_dict()` names the same network written as one
//! `torch.nn.Sequential` called `net` (tests/python/twin.py): the MLP's linear layers are
//! `net.0`, `net.2`, …, `net.{2L}` (activations at the odd indices); the conv net's
//! convolutions are `net.0`, `net.2`, …, `net.{2L}`, the sum pooling (or flattening)
//! `net.{2L+2}` and the final linear layer `net.{2L+3}`. Each has `.weight` and, except the last, `.bias`.
//!
//! Every operation on a batch uses tch's fallible `f_` functions: a libtorch failure (an
//! out-of-memory error on a large batch, say) comes back as an error, not a panic.
use crate::abi::config::{SanceActivation, SanceArch, SanceConfig, SanceConvHead};
use crate::model::rng::Rng;
use tch::{Device, Kind, TchError, Tensor};

type TResult<T> = Result<T, TchError>;

/// A copy of `t` in new storage, outside any autograd graph (a fallible `detach().copy()`).
pub(crate) fn copy_of(t: &Tensor) -> TResult<Tensor> {
    // Under no_grad, so that the copy of a parameter does not require grad itself.
    crate::model::no_grad(|| t.f_detach_copy())
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

    /// The same tensors (handles to the same storage, gradient tracking as it is): for an
    /// undo that keeps a snapshot which is replaced whole, never written in place.
    pub fn shallow(&self) -> Params {
        self.try_map(|t| Ok(t.shallow_clone())).expect("shallow_clone does not fail")
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
    dense_head: bool,
}

fn act(x: &Tensor, a: SanceActivation) -> TResult<Tensor> {
    match a {
        SanceActivation::Silu => x.f_silu(),
        SanceActivation::LeakyRelu => x.f_maximum(&x.f_mul_scalar(LEAKY_SLOPE)?),
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
            dense_head: c.arch == SanceArch::Conv && c.conv_head == SanceConvHead::Dense,
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
                v.push(Shape {
                    name: format!("net.{}", 2 * l),
                    weight: vec![1, fan_in],
                    bias: false,
                    fan_in,
                });
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
                // net.{2L+1} is the last activation, net.{2L+2} the sum pooling or flattening.
                let fan_in = if self.dense_head {
                    let (h, w) = self.final_map();
                    cin * h * w
                } else {
                    cin
                };
                v.push(Shape {
                    name: format!("net.{}", 2 * l + 3),
                    weight: vec![1, fan_in],
                    bias: false,
                    fan_in,
                });
            }
        }
        v
    }

    /// The last feature map's height and width (3×3 convolutions, padding 1, stride 2 after
    /// the first).
    fn final_map(&self) -> (i64, i64) {
        let (mut h, mut w) = (self.in_shape[1], self.in_shape[2]);
        for _ in 0..self.hidden_layers {
            (h, w) = ((h - 1) / 2 + 1, (w - 1) / 2 + 1);
        }
        (h, w)
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
                a = if self.dense_head {
                    a.f_flatten(1, -1)?
                } else {
                    a.f_sum_dim_intlist([2i64, 3].as_slice(), false, a.kind())?
                };
            }
        }
        a.f_matmul(&out[0].weight.f_tr()?)?.f_squeeze_dim(1)
    }

    /// The network copied out of `p` for the MLP's fused CPU passes, when they apply
    /// (crate::model::fast_mlp::native_net): an MLP, float32 on the CPU.
    pub(crate) fn native(&self, p: &Params) -> TResult<Option<sance_mlp::Net<f32>>> {
        if self.arch != SanceArch::Mlp {
            return Ok(None);
        }
        crate::model::fast_mlp::native_net(p, self.activation, self.in_shape[0])
    }

    /// E(x) with no autograd graph: the MLP's fused forward pass for float32 on the CPU from
    /// [`crate::model::fast_mlp::ENERGY_ROWS`] rows (the replay population's refresh, draws'
    /// weights, the update's check, the public energy), else [`Net::energy`] under no_grad.
    pub fn energies(&self, p: &Params, x: &Tensor) -> TResult<Tensor> {
        if x.size()[0] >= crate::model::fast_mlp::ENERGY_ROWS {
            if let Some(fast) = self.native(p)? {
                return crate::model::fast_mlp::energies(&fast, x);
            }
        }
        crate::model::no_grad(|| self.energy(p, x))
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
        crate::model::no_grad(|| match self.arch {
            // One call: the fused passes pay for their copy of the network only on enough rows.
            SanceArch::Mlp => {
                self.mlp_energy_and_grad(p, x, x.size()[0] >= crate::model::fast_mlp::ONE_CALL_ROWS)
            }
            SanceArch::Conv => {
                let mut w = ConvGrad::new(self, p, 1.0)?;
                let g = w.run(x, true)?;
                Ok((w.energy.take().expect("asked for"), g))
            }
        })
    }

    /// Test-only (the `test-hooks` feature): E(x) and ∇ₓE(x) by the sampler's workspace
    /// ([`MlpGrad::new`]), which takes the fused passes at any number of rows.
    #[cfg(feature = "test-hooks")]
    pub fn sampler_energy_and_grad(&self, p: &Params, x: &Tensor) -> TResult<(Tensor, Tensor)> {
        crate::model::no_grad(|| self.mlp_energy_and_grad(p, x, true))
    }

    /// Hand-written backward pass of the MLP with respect to its input, on the fused passes
    /// when `native` and they apply.
    fn mlp_energy_and_grad(&self, p: &Params, x: &Tensor, native: bool) -> TResult<(Tensor, Tensor)> {
        let mut w = MlpGrad::with(self, p, x.size()[0], 1.0, native)?;
        w.run(x, true)?;
        Ok((w.energy.take().expect("asked for"), w.gx.shallow_clone()))
    }
}

/// The MLP's input gradient, run many times on one batch shape (the sampler's inner loop), on
/// sance-mlp's fused passes (crate::model::fast_mlp: float32 on the CPU) or on libtorch's
/// operations ([`MlpOps`]). The gradient comes out multiplied by `scale`, so that the
/// sampler's −λ costs nothing.
pub(crate) struct MlpGrad<'a> {
    /// scale · ∇ₓE, [n, D].
    pub gx: Tensor,
    pub energy: Option<Tensor>,
    work: MlpWork<'a>,
}

enum MlpWork<'a> {
    /// The fused passes' copy of the network, and `scale`.
    Fused(Box<sance_mlp::Net<f32>>, f64),
    Ops(MlpOps<'a>),
}

/// The input gradient on libtorch's operations: weights transposed once, every intermediate
/// in a workspace written with libtorch's `out=` variants, and each activation's derivative
/// fused with the incoming gradient (`silu_backward` / `leaky_relu_backward`: one kernel,
/// where the formula took six). Per call: one `addmm` and one activation per hidden layer
/// forward, one fused derivative and one `mm` per layer backward, no allocation.
struct MlpOps<'a> {
    activation: SanceActivation,
    /// Per hidden layer: W [H, fan_in], Wᵀ, b.
    layers: Vec<(&'a Tensor, Tensor, &'a Tensor)>,
    /// scale · w_out, expanded to [n, H]: dE/da of the last hidden layer, scaled.
    seed: Tensor,
    w_out: &'a Tensor,
    /// Pre-activations, then (overwritten on the way back) the gradients w.r.t. them.
    z: Vec<Tensor>,
    /// Activations, then the gradients w.r.t. them.
    a: Vec<Tensor>,
}

impl<'a> MlpGrad<'a> {
    /// The workspace for a sampler's run (used at every step): on the fused passes where they
    /// apply.
    pub fn new(net: &Net, p: &'a Params, n: i64, scale: f64) -> TResult<MlpGrad<'a>> {
        MlpGrad::with(net, p, n, scale, true)
    }

    /// [`MlpGrad::new`], on libtorch's operations unless `native`.
    fn with(net: &Net, p: &'a Params, n: i64, scale: f64, native: bool) -> TResult<MlpGrad<'a>> {
        let (hidden, out) = p.layers.split_at(p.layers.len() - 1);
        let w_out = &out[0].weight; // [1, H]
        let opts = (w_out.kind(), w_out.device());
        let gx = Tensor::f_empty([n, net.in_shape[0]], opts)?;
        let fast = if native { net.native(p)? } else { None };
        let work = match fast {
            Some(fast) => MlpWork::Fused(Box::new(fast), scale),
            None => {
                let mut layers = Vec::with_capacity(hidden.len());
                let (mut z, mut a) = (Vec::new(), Vec::new());
                for l in hidden {
                    let h = l.weight.size()[0];
                    layers.push((
                        &l.weight,
                        l.weight.f_tr()?,
                        l.bias.as_ref().expect("hidden layers have a bias"),
                    ));
                    z.push(Tensor::f_empty([n, h], opts)?);
                    a.push(Tensor::f_empty([n, h], opts)?);
                }
                let seed = w_out.f_mul_scalar(scale)?.f_expand([n, w_out.size()[1]], false)?;
                MlpWork::Ops(MlpOps { activation: net.activation, layers, seed, w_out, z, a })
            }
        };
        Ok(MlpGrad { gx, energy: None, work })
    }

    /// Writes scale · ∇ₓE(x) into `gx` (and E(x) into `energy` when asked).
    pub fn run(&mut self, x: &Tensor, with_energy: bool) -> TResult<()> {
        match &mut self.work {
            MlpWork::Fused(net, scale) => {
                let mut e = if with_energy {
                    Some(Tensor::f_empty([x.size()[0]], (Kind::Float, Device::Cpu))?)
                } else {
                    None
                };
                crate::model::fast_mlp::run(net, x, *scale, &mut self.gx, e.as_mut())?;
                self.energy = e;
            }
            MlpWork::Ops(w) => {
                if let Some(e) = w.run(x, with_energy, &self.gx)? {
                    self.energy = Some(e);
                }
            }
        }
        Ok(())
    }
}

impl MlpOps<'_> {
    /// Writes scale · ∇ₓE(x) into `gx`; returns E(x) when asked.
    fn run(&mut self, x: &Tensor, with_energy: bool, gx: &Tensor) -> TResult<Option<Tensor>> {
        let last = self.layers.len() - 1;
        for i in 0..=last {
            let (_, wt, b) = &self.layers[i];
            let input = if i == 0 { x } else { &self.a[i - 1] };
            let _ = b.f_addmm_out(&self.z[i], input, wt)?;
            if i < last || with_energy {
                let _ = match self.activation {
                    SanceActivation::Silu => self.z[i].f_silu_out(&self.a[i])?,
                    SanceActivation::LeakyRelu => {
                        self.z[i].f_mul_scalar(LEAKY_SLOPE)?.f_maximum_out(&self.a[i], &self.z[i])?
                    }
                };
            }
        }
        let energy = if with_energy {
            Some(self.a[last].f_matmul(&self.w_out.f_tr()?)?.f_squeeze_dim(1)?)
        } else {
            None
        };
        for i in (0..=last).rev() {
            let upstream = if i == last { &self.seed } else { &self.a[i] };
            let z = &self.z[i];
            let _ = match self.activation {
                SanceActivation::Silu => z.f_silu_backward_grad_input(z, upstream)?,
                SanceActivation::LeakyRelu => {
                    z.f_leaky_relu_backward_grad_input(z, upstream, LEAKY_SLOPE, false)?
                }
            };
            let down = if i == 0 { gx } else { &self.a[i - 1] };
            let _ = z.f_mm_out(down, self.layers[i].0)?;
        }
        Ok(energy)
    }
}

/// The conv net's input gradient by hand, run many times (the sampler's inner loop): the
/// backward of each convolution with respect to its input is the transposed convolution
/// with the same weight, the activation's derivative is fused with the incoming gradient, and
/// the sum pooling's backward (the last layer's weight broadcast over the feature map) is
/// built once. Weights are kept in channels-last order, which oneDNN's CPU convolutions run
/// ~25 % faster than autograd's `convolution_backward` on the 28×28 energy; no autograd graph
/// is built. The gradient comes out multiplied by `scale`.
pub(crate) struct ConvGrad<'a> {
    activation: SanceActivation,
    /// Per convolution: weight (channels-last copy), bias, stride.
    layers: Vec<(Tensor, &'a Tensor, i64)>,
    w_out: &'a Tensor,
    dense_head: bool,
    scale: f64,
    /// scale · dE/d(last feature map), for the batch shape it was built for.
    seed: Option<Tensor>,
    pub energy: Option<Tensor>,
}

/// `t` with the same sizes, stored channels-last (NHWC) — permute, copy, permute back.
fn channels_last(t: &Tensor) -> TResult<Tensor> {
    t.f_permute([0i64, 2, 3, 1].as_slice())?.f_contiguous()?.f_permute([0i64, 3, 1, 2].as_slice())
}

impl<'a> ConvGrad<'a> {
    pub fn new(net: &Net, p: &'a Params, scale: f64) -> TResult<ConvGrad<'a>> {
        let (convs, out) = p.layers.split_at(p.layers.len() - 1);
        let layers = convs
            .iter()
            .enumerate()
            .map(|(i, l)| {
                Ok((
                    channels_last(&l.weight.f_detach()?)?,
                    l.bias.as_ref().expect("convolutions have a bias"),
                    if i == 0 { 1 } else { 2 },
                ))
            })
            .collect::<TResult<_>>()?;
        Ok(ConvGrad {
            activation: net.activation,
            layers,
            w_out: &out[0].weight,
            dense_head: net.dense_head,
            scale,
            seed: None,
            energy: None,
        })
    }

    /// scale · ∇ₓE(x) (and E(x) into `energy` when asked).
    pub fn run(&mut self, x: &Tensor, with_energy: bool) -> TResult<Tensor> {
        // Each convolution's input height and width (for the transposed convolution's padding)
        // and its pre-activation.
        let mut in_sizes = Vec::with_capacity(self.layers.len());
        let mut pre = Vec::with_capacity(self.layers.len());
        let mut a = x.shallow_clone();
        for (w, b, s) in &self.layers {
            in_sizes.push((a.size()[2], a.size()[3]));
            let z = a.f_conv2d(w, Some(*b), [*s, *s], [1, 1], [1, 1], 1)?;
            a = act(&z, self.activation)?;
            pre.push(z);
        }
        if with_energy {
            let pooled = if self.dense_head {
                a.f_flatten(1, -1)?
            } else {
                a.f_sum_dim_intlist([2i64, 3].as_slice(), false, a.kind())?
            };
            self.energy = Some(pooled.f_matmul(&self.w_out.f_tr()?)?.f_squeeze_dim(1)?);
        }
        let last = pre.last().expect("at least one convolution");
        let fits = self.seed.as_ref().is_some_and(|t| t.size() == last.size());
        if !fits {
            let sz = last.size();
            let view = if self.dense_head { [1, sz[1], sz[2], sz[3]] } else { [1, sz[1], 1, 1] };
            let seed = self
                .w_out
                .f_detach()?
                .f_mul_scalar(self.scale)?
                .f_view(view)?
                .f_expand(last.size(), false)?;
            // Materialised: the fused derivative runs several times slower on a broadcast view.
            self.seed = Some(channels_last(&seed)?);
        }
        let mut g = self.seed.as_ref().expect("built above").shallow_clone();
        for (i, z) in pre.iter().enumerate().rev() {
            if g.stride() != z.stride() {
                // The first convolution (one input channel) leaves its output in NCHW order while
                // the transposed convolutions return channels-last: an elementwise op on mixed
                // orders runs several times slower than this copy.
                g = if z.is_contiguous() { g.f_contiguous()? } else { channels_last(&g)? };
            }
            g = match self.activation {
                SanceActivation::Silu => z.f_silu_backward(&g)?,
                SanceActivation::LeakyRelu => z.f_leaky_relu_backward(&g, LEAKY_SLOPE, false)?,
            };
            let (w, _, s) = &self.layers[i];
            let (h_in, w_in) = in_sizes[i];
            // The transposed convolution's output size is (out − 1)·s − 2·pad + k (+ padding
            // back to the input's size, which a stride of 2 rounds away).
            let (h_out, w_out) = (z.size()[2], z.size()[3]);
            let pad = [h_in - ((h_out - 1) * s + 1), w_in - ((w_out - 1) * s + 1)];
            g = g.f_conv_transpose2d(w, None::<&Tensor>, [*s, *s], [1, 1], pad, 1, [1, 1])?;
        }
        // Channels-last comes out for more than one input channel; callers get x's layout.
        g.f_contiguous()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_grad_matches_autograd(arch: SanceArch, activation: SanceActivation) {
        check_grad_with_head(arch, activation, SanceConvHead::Sum);
    }

    fn check_grad_with_head(arch: SanceArch, activation: SanceActivation, conv_head: SanceConvHead) {
        let mut c = SanceConfig { arch, activation, conv_head, ..Default::default() };
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
        check_grad_with_head(SanceArch::Conv, SanceActivation::Silu, SanceConvHead::Dense);
        check_grad_with_head(SanceArch::Conv, SanceActivation::LeakyRelu, SanceConvHead::Dense);
    }

    #[test]
    fn dense_head_weighs_each_position_of_the_last_map() {
        // 6×5 input, one stride-2 conv: a 3×3 last map of 16 channels, so 144 head weights; with
        // all of them equal the dense head is the sum head's energy.
        let c = SanceConfig {
            arch: SanceArch::Conv,
            conv_head: SanceConvHead::Dense,
            hidden_width: 8,
            hidden_layers: 1,
            height: 6,
            width: 5,
            ..Default::default()
        };
        let dense = Net::from_config(&c);
        let sum = Net::from_config(&SanceConfig { conv_head: SanceConvHead::Sum, ..c });
        let mut rng = Rng::new(4);
        let mut p = dense.init_params(&mut rng, Kind::Double, Device::Cpu).unwrap();
        assert_eq!(p.layers.last().unwrap().weight.size(), [1, 16 * 3 * 3]);
        let ps = sum.init_params(&mut rng, Kind::Double, Device::Cpu).unwrap();
        let w: Vec<f64> = Vec::try_from(ps.layers.last().unwrap().weight.flatten(0, -1)).unwrap();
        let spread: Vec<f64> = w.iter().flat_map(|&v| [v; 9]).collect();
        for (d, s) in p.layers.iter_mut().zip(&ps.layers) {
            d.weight = s.weight.copy();
            d.bias = s.bias.as_ref().map(|b| b.copy());
        }
        p.layers.last_mut().unwrap().weight = Tensor::from_slice(&spread).view([1, 144]);
        let x = rng.randn(&[4, 1, 6, 5], Kind::Double, Device::Cpu).unwrap();
        let (ed, es) = (dense.energy(&p, &x).unwrap(), sum.energy(&ps, &x).unwrap());
        assert!(ed.allclose(&es, 1e-10, 1e-10, false));
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
        assert_eq!(
            conv.param_names(),
            ["net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias", "net.5.weight"]
        );
        let p = conv.init_params(&mut Rng::new(0), Kind::Float, Device::Cpu).unwrap();
        let names: Vec<String> = p.named().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, conv.param_names());
    }
}

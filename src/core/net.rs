//! Energy networks as pure functions of an explicit parameter list, so that the model θ and
//! its frozen snapshot θ̄ share one definition.
//!
//! MLP: data_dim → hidden_width × hidden_layers → 1, no bias on the last layer (a constant
//! shift of E trades exactly against the NCE offset c). Its input gradient is computed by hand
//! (no autograd graph), which is both faster and guarantees no parameter gradient is built.
//!
//! CONV (IGEBM-style): 3×3 conv (C → w), then `hidden_layers` stride-2 3×3 convs doubling the
//! channels, SiLU/LeakyReLU after each, global sum pooling, linear to a scalar without bias.
use crate::config::{SanceActivation, SanceArch, SanceConfig};
use crate::core::rng::Rng;
use tch::{Device, Kind, Tensor};

const LEAKY_SLOPE: f64 = 0.2;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Net {
    pub arch: SanceArch,
    pub activation: SanceActivation,
    /// Shape of one sample (MLP: [D]; CONV: [C, H, W]).
    in_shape: [i64; 3],
    hidden_width: i64,
    hidden_layers: i64,
}

fn act(x: &Tensor, a: SanceActivation) -> Tensor {
    match a {
        SanceActivation::Silu => x.silu(),
        SanceActivation::LeakyRelu => x.maximum(&(x * LEAKY_SLOPE)),
    }
}

/// Derivative of the activation at pre-activation `z`.
fn act_grad(z: &Tensor, a: SanceActivation) -> Tensor {
    match a {
        SanceActivation::Silu => {
            let s = z.sigmoid();
            // silu'(z) = s + z·s·(1 − s)
            &s * (z * (1.0 - &s) + 1.0)
        }
        SanceActivation::LeakyRelu => z.gt(0.0).to_kind(z.kind()) * (1.0 - LEAKY_SLOPE) + LEAKY_SLOPE,
    }
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

    /// Shapes of the parameter tensors, in order, with their fan-in.
    fn param_shapes(&self) -> Vec<(Vec<i64>, i64)> {
        let mut v = Vec::new();
        match self.arch {
            SanceArch::Mlp => {
                let mut fan_in = self.in_shape[0];
                for _ in 0..self.hidden_layers {
                    v.push((vec![self.hidden_width, fan_in], fan_in));
                    v.push((vec![self.hidden_width], fan_in));
                    fan_in = self.hidden_width;
                }
                v.push((vec![1, fan_in], fan_in));
            }
            SanceArch::Conv => {
                let mut cin = self.in_shape[0];
                let mut cout = self.hidden_width;
                for l in 0..=self.hidden_layers {
                    if l > 0 {
                        cout *= 2;
                    }
                    v.push((vec![cout, cin, 3, 3], cin * 9));
                    v.push((vec![cout], cin * 9));
                    cin = cout;
                }
                v.push((vec![1, cin], cin));
            }
        }
        v
    }

    /// PyTorch's default init (kaiming-uniform, a = √5): U(−1/√fan_in, 1/√fan_in) for weights
    /// and biases alike.
    pub fn init_params(&self, rng: &mut Rng, kind: Kind, device: Device) -> Vec<Tensor> {
        self.param_shapes()
            .into_iter()
            .map(|(shape, fan_in)| {
                let bound = 1.0 / (fan_in as f64).sqrt();
                let u = rng.rand(&shape, kind, device);
                (u * (2.0 * bound) - bound).set_requires_grad(true)
            })
            .collect()
    }

    /// E(x) for a batch: `x` is [N, D] (MLP) or [N, C, H, W] (CONV); returns [N].
    pub fn energy(&self, p: &[Tensor], x: &Tensor) -> Tensor {
        match self.arch {
            SanceArch::Mlp => {
                let mut a = x.shallow_clone();
                let l = self.hidden_layers as usize;
                for i in 0..l {
                    a = act(&p[2 * i + 1].addmm(&a, &p[2 * i].tr()), self.activation);
                }
                a.matmul(&p[2 * l].tr()).squeeze_dim(1)
            }
            SanceArch::Conv => {
                let mut a = x.shallow_clone();
                let l = self.hidden_layers as usize;
                for i in 0..=l {
                    let stride = if i == 0 { 1 } else { 2 };
                    a = a.conv2d(&p[2 * i], Some(&p[2 * i + 1]), [stride, stride], [1, 1], [1, 1], 1);
                    a = act(&a, self.activation);
                }
                let pooled = a.sum_dim_intlist([2i64, 3].as_slice(), false, a.kind());
                pooled.matmul(&p[2 * l + 2].tr()).squeeze_dim(1)
            }
        }
    }

    /// E(x) and ∇ₓE(x), with no gradient built or kept for any parameter.
    pub fn energy_and_grad(&self, p: &[Tensor], x: &Tensor) -> (Tensor, Tensor) {
        match self.arch {
            SanceArch::Mlp => tch::no_grad(|| self.mlp_energy_and_grad(p, x)),
            SanceArch::Conv => {
                let detached: Vec<Tensor> = p.iter().map(|t| t.detach()).collect();
                let xg = x.detach().set_requires_grad(true);
                // Callers may be inside no_grad (the sampler is): the graph must be built, and
                // summed, with grad mode on, or libtorch has nothing to differentiate.
                tch::with_grad(|| {
                    let e = self.energy(&detached, &xg);
                    let g = Tensor::run_backward(&[e.sum(e.kind())], &[&xg], false, false);
                    (e.detach(), g.into_iter().next().unwrap())
                })
            }
        }
    }

    /// Hand-written backward pass of the MLP with respect to its input.
    fn mlp_energy_and_grad(&self, p: &[Tensor], x: &Tensor) -> (Tensor, Tensor) {
        let l = self.hidden_layers as usize;
        let mut pre = Vec::with_capacity(l);
        let mut a = x.shallow_clone();
        for i in 0..l {
            let z = p[2 * i + 1].addmm(&a, &p[2 * i].tr());
            a = act(&z, self.activation);
            pre.push(z);
        }
        let w_out = &p[2 * l]; // [1, H]
        let e = a.matmul(&w_out.tr()).squeeze_dim(1);
        // dE/da_L = w_out for every row; walk back through the layers.
        let mut g = w_out.expand([x.size()[0], w_out.size()[1]], false);
        for i in (0..l).rev() {
            g = (g * act_grad(&pre[i], self.activation)).matmul(&p[2 * i]);
        }
        (e, g)
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
        let p = net.init_params(&mut rng, Kind::Double, Device::Cpu);
        let mut shape = vec![7i64];
        shape.extend(c.sample_shape());
        let x = rng.randn(&shape, Kind::Double, Device::Cpu);
        let (e, g) = net.energy_and_grad(&p, &x);
        let xg = x.detach().set_requires_grad(true);
        let e2 = net.energy(&p, &xg);
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
        let p = net.init_params(&mut rng, Kind::Float, Device::Cpu);
        let x = rng.randn(&[5, 2], Kind::Float, Device::Cpu);
        let (e, g) = net.energy_and_grad(&p, &x);
        assert!(!e.requires_grad() && !g.requires_grad());
        assert!(p.iter().all(|t| !t.grad().defined()));
    }
}

//! What a trained model is used for: energies, input gradients and Langevin samples of E_θ
//! (θ: the parameters' moving average θ̃ when config.ema_decay > 0, see `Ebm::model_params`).
//! The calls work in chunks of [`Ebm::chunk_rows`] rows, so that their working memory is
//! bounded whatever `n` is; only sampling changes the model (its random stream), under the
//! undo of the stream.
use super::saved::Undo;
use super::Ebm;
use crate::abi::config::{validate_langevin, SanceLangevin};
use crate::abi::sampling::{SanceSampler, SanceSampling};
use crate::abi::status::Result;
use crate::fault::torch_point;
use crate::model::langevin;
use tch::{Device, Kind, Tensor};

impl Ebm {
    /// E_θ(x) for a batch [N, ...] → [N], in chunks of [`Ebm::chunk_rows`] rows.
    pub fn energy(&self, x: &Tensor) -> Result<Tensor> {
        let _threads = self.call_threads();
        let n = x.size()[0] as usize;
        if n == 0 {
            return Ok(Tensor::f_zeros([0], (self.kind, self.device))?);
        }
        let chunk = self.chunk_rows();
        let mut parts = Vec::new();
        for (start, k) in row_chunks(n, chunk) {
            let z = self.to_model(&x.f_narrow(0, start, k)?)?;
            parts.push(self.net.energies(self.model_params(), &z)?);
            torch_point()?;
        }
        let e = if parts.len() == 1 { parts.remove(0) } else { Tensor::f_cat(&parts, 0)? };
        self.energy_to_data(&e)
    }

    /// (E_θ(x), ∇ₓE_θ(x)), in chunks; with more than one chunk the gradients are gathered on
    /// the host, so that the device holds one chunk's work at a time.
    pub fn energy_grad(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let _threads = self.call_threads();
        let n = x.size()[0] as usize;
        let chunk = self.chunk_rows();
        let p = self.model_params().detached();
        let mut energies = Vec::new();
        let grads = gathered(n, chunk, x.size(), self.kind, |start, k| {
            let z = self.to_model(&x.f_narrow(0, start, k)?)?;
            let (e, g) = self.net.energy_and_grad(&p, &z)?;
            torch_point()?;
            energies.push(e);
            self.grad_to_data(&g)
        })?;
        let e = if energies.len() == 1 { energies.remove(0) } else { Tensor::f_cat(&energies, 0)? };
        Ok((self.energy_to_data(&e)?, grads))
    }

    /// Langevin chains on E_θ from `l`'s init distribution: `draw` with SANCE_SAMPLER_FRESH
    /// and `l` as the moves (on the draws' own stream; the model's is untouched).
    pub fn sample(&mut self, n: usize, l: &SanceLangevin) -> Result<Tensor> {
        validate_langevin(l, "params")?;
        let s = SanceSampling { sampler: SanceSampler::Fresh as u32, moves: *l, ..self.sampling_defaults() };
        Ok(self.draw(n, &s)?.0)
    }

    /// Langevin chains on E_θ from given starting points, in chunks like [`Ebm::sample`].
    pub fn sample_from(&mut self, x: &Tensor, l: &SanceLangevin) -> Result<Tensor> {
        validate_langevin(l, "params")?;
        let n = x.size()[0] as usize;
        let chunk = self.chunk_rows();
        let kind = self.kind;
        self.undoable(Undo::Stream, |m| {
            let p = m.model_params().detached();
            let clamp = m.clamp_of(l)?;
            gathered(n, chunk, x.size(), kind, |start, k| {
                let z0 = m.to_model(&x.f_narrow(0, start, k)?)?;
                let z = langevin::run_clamped(&m.net, &p, z0, l, &clamp, &mut m.rng, false)?.0;
                m.to_data(&z)
            })
        })
    }
}

/// (start, rows) of the consecutive chunks of at most `chunk` rows that cover `n` rows.
fn row_chunks(n: usize, chunk: usize) -> impl Iterator<Item = (i64, i64)> {
    (0..n).step_by(chunk.max(1)).map(move |s| (s as i64, chunk.min(n - s) as i64))
}

/// `f(start, rows)` for each chunk of `n` rows, as one tensor of `shape`: with one chunk its
/// result as it is (on the device), with several gathered chunk by chunk on the host, so that
/// the device holds one chunk's work at a time.
pub(super) fn gathered(
    n: usize,
    chunk: usize,
    shape: Vec<i64>,
    kind: Kind,
    mut f: impl FnMut(i64, i64) -> Result<Tensor>,
) -> Result<Tensor> {
    if n <= chunk {
        return f(0, n as i64);
    }
    let out = Tensor::f_empty(shape, (kind, Device::Cpu))?;
    for (start, k) in row_chunks(n, chunk) {
        out.f_narrow(0, start, k)?.f_copy_(&f(start, k)?)?;
    }
    Ok(out)
}

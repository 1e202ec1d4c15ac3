//! Several tensors kept end to end in one flat buffer, each a view of it.
//!
//! θ, c and Adam's two moments live this way so that AdamW, the parameter backup, its
//! restore and the gradient norm are a few operations on one tensor each instead of a loop of
//! small kernels per tensor (about 90 launches per step for the default MLP before); a
//! checkpoint load or a restore copies into the views, so they stay views.
use tch::{Device, Kind, TchError, Tensor};

/// A zeroed buffer holding tensors of the given shapes, and views of it, one per shape.
pub fn zeros(shapes: &[Vec<i64>], kind: Kind, device: Device) -> Result<(Tensor, Vec<Tensor>), TchError> {
    let total: i64 = shapes.iter().map(|s| s.iter().product::<i64>()).sum();
    let flat = Tensor::f_zeros([total], (kind, device))?;
    let views = views(&flat, shapes)?;
    Ok((flat, views))
}

/// Views of `flat` with the given shapes, in order, each starting where the previous ends.
pub fn views(flat: &Tensor, shapes: &[Vec<i64>]) -> Result<Vec<Tensor>, TchError> {
    let mut offset = 0;
    shapes
        .iter()
        .map(|s| {
            let n: i64 = s.iter().product();
            let v = flat.f_narrow(0, offset, n)?.f_view(s.as_slice())?;
            offset += n;
            Ok(v)
        })
        .collect()
}

/// The tensors end to end in a new flat buffer (one `cat`).
pub fn concat<'a>(ts: impl IntoIterator<Item = &'a Tensor>) -> Result<Tensor, TchError> {
    let flat: Vec<Tensor> = ts.into_iter().map(|t| t.f_reshape([-1])).collect::<Result<_, _>>()?;
    Tensor::f_cat(&flat, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_alias_the_buffer_in_order() {
        let shapes = vec![vec![2, 3], vec![3], vec![]];
        let (mut flat, v) = zeros(&shapes, Kind::Double, Device::Cpu).unwrap();
        assert_eq!(flat.size(), [10]);
        flat.copy_(&Tensor::arange(10, (Kind::Double, Device::Cpu)));
        assert_eq!(Vec::<f64>::try_from(&v[1]).unwrap(), [6.0, 7.0, 8.0]);
        assert_eq!(v[2].size(), Vec::<i64>::new());
        assert_eq!(v[2].double_value(&[]), 9.0);
        // A write through a view is a write to the buffer, and concat gives it back.
        let _ = v[0].get(1).fill_(-1.0);
        assert_eq!(flat.double_value(&[4]), -1.0);
        assert!(concat(&v).unwrap().equal(&flat));
    }
}

//! sance-experiments: the experiments around sance, kept out of libsance. The programs
//! `sance-toy` (2-D demo and the K sweep), `sance-hd` (the 16-D mixture, the 8×8 digits,
//! Fashion-MNIST) and `sance-lowd` (exactly known densities in 2–5 D, in any units) share this
//! library: the real datasets, the sample-quality metrics, the densities and measures of each
//! experiment, one flag parser for the options they share, one grid normaliser, and the PNG
//! writer. The tests in `tests/` check the claims docs/results.md makes, at a short budget.
pub mod cli;
pub mod datasets;
pub mod grid;
pub mod held_out;
pub mod images;
pub mod lowd;
pub mod metrics;
pub mod plot;
pub mod toy;

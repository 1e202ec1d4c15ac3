//! The image experiments of sance-hd: their settings and data plumbing, and the scoring
//! ladder every set of generated images goes through.
pub mod score;
pub mod setup;

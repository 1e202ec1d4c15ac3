//! Every entry point × bad input, one test per row, mirrored in docs/errors.md (a test checks
//! that the two lists agree). Each test checks the status, that the message names the cause,
//! that out-parameters were not written, and that the model's energies on a probe set and its
//! counters are unchanged.
mod common;
use common::*;
use sance::abi::ais::SanceAis;
use sance::abi::config::{
    SanceActivation, SanceArch, SanceConfig, SanceConvHead, SanceInit, SanceLangevin, SanceNoise,
    SanceScaling,
};
use sance::abi::sampling::{SanceDrawReport, SanceSampler, SanceSampling};
use sance::ffi::api::*;
use sance::ffi::handle::SanceEbm;
use sance::{SanceProgress, SanceStatus};
use std::ffi::CString;
use std::ptr;

struct Ctx {
    h: *mut SanceEbm,
    cfg: SanceConfig,
    data: Vec<f32>,
    out: Vec<f32>,
    new_handle: *mut SanceEbm,
    dir: std::path::PathBuf,
}

const SENTINEL: f32 = 42.0;

impl Ctx {
    fn new(id: &str) -> Ctx {
        let cfg = small_config();
        let h = new(&cfg);
        train(h, 0..5);
        Ctx {
            h,
            cfg,
            data: data("8gaussians", 64, 1),
            out: vec![SENTINEL; 4096],
            new_handle: 0x10 as *mut SanceEbm,
            dir: scratch(&format!("bad-{id}")),
        }
    }
    fn out(&mut self) -> *mut f32 {
        self.out.as_mut_ptr()
    }
    /// sance_ebm_new with one field of the config changed.
    fn new_with(&mut self, edit: impl FnOnce(&mut SanceConfig)) -> SanceStatus {
        let mut c = self.cfg;
        edit(&mut c);
        unsafe { sance_ebm_new(&c, &mut self.new_handle) }
    }
    fn langevin_with(&mut self, edit: impl FnOnce(&mut SanceLangevin)) -> SanceStatus {
        let mut l = self.cfg.langevin;
        edit(&mut l);
        let out = self.out();
        unsafe { sance_ebm_sample(self.h, 4, &l, out) }
    }
    /// sance_ebm_log_z with one field of the defaults changed; the estimate must not be written.
    fn log_z_with(&mut self, edit: impl FnOnce(&mut SanceAis)) -> SanceStatus {
        let mut a = SanceAis::default();
        assert_eq!(unsafe { sance_ais_init(&mut a, self.h) }, SanceStatus::Ok, "{}", last_error());
        edit(&mut a);
        let (mut z, mut se) = (f64::MAX, f64::MAX);
        let s = unsafe { sance_ebm_log_z(self.h, &a, &mut z, &mut se) };
        assert_eq!((z, se), (f64::MAX, f64::MAX), "the estimate was written by a failed call");
        s
    }
    /// sance_ebm_draw with one field of the model's defaults changed; neither the draws nor
    /// the report may be written.
    fn draw_with(&mut self, edit: impl FnOnce(&mut SanceSampling)) -> SanceStatus {
        let mut s = default_sampling(self.h);
        edit(&mut s);
        let mut report = untouched_report();
        let out = self.out();
        let st = unsafe { sance_ebm_draw(self.h, 4, &s, out, &mut report) };
        assert_eq!(report, untouched_report(), "the report was written by a failed call");
        st
    }
    fn path(&self, name: &str) -> CString {
        cpath(&self.dir.join(name))
    }
}

/// A reduction over a world of one rank: the sum is the buffer itself.
unsafe extern "C" fn no_op_sum(_buf: *mut f32, _n: usize, _user: *mut std::ffi::c_void) -> i32 {
    0
}

fn default_sampling(h: *mut SanceEbm) -> SanceSampling {
    let mut s =
        SanceSampling { sampler: 99, moves: SanceLangevin::default(), target_ess: 0.0, max_temperatures: 0 };
    assert_eq!(unsafe { sance_sampling_init(&mut s, h) }, SanceStatus::Ok, "{}", last_error());
    s
}

/// A report no call writes (NaN fields compare unequal, so none here).
fn untouched_report() -> SanceDrawReport {
    SanceDrawReport {
        sampler: 77,
        temperatures: 77,
        ess: 7.0,
        acceptance: 7.0,
        log_z: 7.0,
        log_z_std_error: 7.0,
    }
}

fn progress(h: *mut SanceEbm) -> SanceProgress {
    let mut p = SanceProgress::default();
    assert_eq!(unsafe { sance_ebm_progress(h, &mut p) }, SanceStatus::Ok);
    p
}

fn run_row(id: &str, status: SanceStatus, needle: &str, call: impl FnOnce(&mut Ctx) -> SanceStatus) {
    let mut c = Ctx::new(id);
    let (e0, p0) = (probe(c.h), progress(c.h));
    let got = call(&mut c);
    let msg = last_error();
    assert_eq!(got, status, "{id}: got {got:?} ({msg})");
    assert!(msg.contains(needle), "{id}: message {msg:?} does not name {needle:?}");
    assert_eq!(bits(&probe(c.h)), bits(&e0), "{id}: the model's energies changed");
    assert_eq!(progress(c.h), p0, "{id}: the model's counters changed");
    assert!(c.out.iter().all(|&v| v == SENTINEL), "{id}: an output buffer was written");
    assert_eq!(c.new_handle, 0x10 as *mut SanceEbm, "{id}: an output handle was written");
    unsafe { sance_ebm_free(c.h) };
}

macro_rules! rows {
    ($( $id:ident : $entry:literal, $input:literal => $status:ident, $needle:literal, |$c:ident| $call:expr; )*) => {
        $(
            #[test]
            fn $id() {
                run_row(stringify!($id), SanceStatus::$status, $needle, |$c: &mut Ctx| $call);
            }
        )*
        /// (id, entry point, bad input, status) for every row.
        const ROWS: &[(&str, &str, &str, &str)] = &[$((stringify!($id), $entry, $input, stringify!($status)),)*];
    };
}

/// Calls sance_config_init_image on a filled struct and checks that a refusal wrote nothing.
fn image_untouched(c: &mut Ctx, abi: u32, channels: u32, height: u32, width: u32) -> SanceStatus {
    let mut k = SanceConfig { seed: 987, ..c.cfg };
    let s = unsafe { sance_config_init_image(&mut k, abi, channels, height, width) };
    assert_eq!(k, SanceConfig { seed: 987, ..c.cfg }, "config_init_image wrote into the struct");
    s
}

fn raw_enum<T>(field: &mut T, v: u32) {
    // Writes an out-of-range value the way C code could; never read back as the enum in Rust.
    unsafe { (field as *mut T as *mut u32).write(v) }
}

rows! {
    config_init_null: "sance_config_init", "cfg NULL" => NullPointer, "cfg", |_c| unsafe { sance_config_init(ptr::null_mut(), sance::abi::version::SANCE_ABI_VERSION) };
    config_init_other_abi: "sance_config_init", "abi_version of another header" => InvalidArgument, "abi_version is 1", |c| {
        let mut k = c.cfg;
        k.seed = 987;
        let s = unsafe { sance_config_init(&mut k, 1) };
        assert_eq!(k, SanceConfig { seed: 987, ..c.cfg }, "config_init wrote into the struct");
        s
    };
    config_image_null: "sance_config_init_image", "cfg NULL" => NullPointer, "cfg", |_c| unsafe { sance_config_init_image(ptr::null_mut(), sance::abi::version::SANCE_ABI_VERSION, 1, 28, 28) };
    config_image_other_abi: "sance_config_init_image", "abi_version of another header" => InvalidArgument, "abi_version is 1", |c| image_untouched(c, 1, 1, 28, 28);
    config_image_height_zero: "sance_config_init_image", "height = 0" => InvalidArgument, "config.height", |c| image_untouched(c, sance::abi::version::SANCE_ABI_VERSION, 1, 0, 28);
    config_image_channels_zero: "sance_config_init_image", "channels = 0" => InvalidArgument, "config.channels", |c| image_untouched(c, sance::abi::version::SANCE_ABI_VERSION, 0, 28, 28);
    config_image_too_large: "sance_config_init_image", "8×4096×4096" => InvalidArgument, "config.channels*height*width", |c| image_untouched(c, sance::abi::version::SANCE_ABI_VERSION, 8, 4096, 4096);
    config_image_width_huge: "sance_config_init_image", "width = 5000" => InvalidArgument, "config.width", |c| image_untouched(c, sance::abi::version::SANCE_ABI_VERSION, 1, 28, 5000);
    new_null_config: "sance_ebm_new", "config NULL" => NullPointer, "config", |c| unsafe { sance_ebm_new(ptr::null(), &mut c.new_handle) };
    new_null_out: "sance_ebm_new", "out NULL" => NullPointer, "out", |c| unsafe { sance_ebm_new(&c.cfg, ptr::null_mut()) };
    new_abi_version: "sance_ebm_new", "abi_version of another header" => InvalidArgument, "config.abi_version", |c| c.new_with(|k| k.abi_version = 999);
    new_arch_unknown: "sance_ebm_new", "arch = 7" => InvalidArgument, "config.arch", |c| c.new_with(|k| raw_enum::<SanceArch>(&mut k.arch, 7));
    new_activation_unknown: "sance_ebm_new", "activation = 9" => InvalidArgument, "config.activation", |c| c.new_with(|k| raw_enum::<SanceActivation>(&mut k.activation, 9));
    new_init_unknown: "sance_ebm_new", "langevin.init = 5" => InvalidArgument, "config.langevin.init", |c| c.new_with(|k| raw_enum::<SanceInit>(&mut k.langevin.init, 5));
    new_conv_head_unknown: "sance_ebm_new", "conv_head = 3" => InvalidArgument, "config.conv_head", |c| c.new_with(|k| raw_enum::<SanceConvHead>(&mut k.conv_head, 3));
    new_noise_unknown: "sance_ebm_new", "noise = 4" => InvalidArgument, "config.noise", |c| c.new_with(|k| raw_enum::<SanceNoise>(&mut k.noise, 4));
    new_scaling_unknown: "sance_ebm_new", "scaling = 7" => InvalidArgument, "config.scaling", |c| c.new_with(|k| raw_enum::<SanceScaling>(&mut k.scaling, 7));
    new_metropolis_two: "sance_ebm_new", "langevin.metropolis = 2" => InvalidArgument, "config.langevin.metropolis", |c| c.new_with(|k| k.langevin.metropolis = 2);
    new_mala_without_noise: "sance_ebm_new", "langevin.metropolis = 1 with noise_std = 0" => InvalidArgument, "noise_std > 0", |c| c.new_with(|k| { k.langevin.metropolis = 1; k.langevin.noise_std = 0.0; });
    new_target_acceptance_one: "sance_ebm_new", "langevin.target_acceptance = 1" => InvalidArgument, "config.langevin.target_acceptance", |c| c.new_with(|k| { k.langevin.metropolis = 1; k.langevin.target_acceptance = 1.0; });
    new_target_without_mala: "sance_ebm_new", "langevin.target_acceptance = 0.6 with metropolis = 0" => InvalidArgument, "config.langevin.target_acceptance", |c| c.new_with(|k| { k.langevin.metropolis = 0; k.langevin.target_acceptance = 0.6; });
    new_num_threads_huge: "sance_ebm_new", "num_threads = 5000" => InvalidArgument, "config.num_threads", |c| c.new_with(|k| k.num_threads = 5000);
    new_data_dim_zero: "sance_ebm_new", "data_dim = 0" => InvalidArgument, "config.data_dim", |c| c.new_with(|k| k.data_dim = 0);
    new_data_dim_huge: "sance_ebm_new", "data_dim = 2^30" => InvalidArgument, "config.data_dim", |c| c.new_with(|k| k.data_dim = 1 << 30);
    new_conv_channels_zero: "sance_ebm_new", "CONV with channels = 0" => InvalidArgument, "config.channels", |c| c.new_with(|k| { k.arch = SanceArch::Conv; k.channels = 0; });
    new_conv_too_large: "sance_ebm_new", "CONV of 4096×4096×8" => InvalidArgument, "config.channels*height*width", |c| c.new_with(|k| { k.arch = SanceArch::Conv; k.channels = 8; k.height = 4096; k.width = 4096; });
    new_conv_height_zero: "sance_ebm_new", "CONV with height = 0" => InvalidArgument, "config.height", |c| c.new_with(|k| { k.arch = SanceArch::Conv; k.height = 0; });
    new_conv_width_zero: "sance_ebm_new", "CONV with width = 0" => InvalidArgument, "config.width", |c| c.new_with(|k| { k.arch = SanceArch::Conv; k.width = 0; });
    new_hidden_width_zero: "sance_ebm_new", "hidden_width = 0" => InvalidArgument, "config.hidden_width", |c| c.new_with(|k| k.hidden_width = 0);
    new_hidden_layers_zero: "sance_ebm_new", "MLP with hidden_layers = 0" => InvalidArgument, "config.hidden_layers", |c| c.new_with(|k| k.hidden_layers = 0);
    new_learning_rate_negative: "sance_ebm_new", "learning_rate = -1e-3" => InvalidArgument, "config.learning_rate", |c| c.new_with(|k| k.learning_rate = -1e-3);
    new_learning_rate_nan: "sance_ebm_new", "learning_rate = NaN" => InvalidArgument, "config.learning_rate", |c| c.new_with(|k| k.learning_rate = f32::NAN);
    new_beta1_one: "sance_ebm_new", "adam_beta1 = 1" => InvalidArgument, "config.adam_beta1", |c| c.new_with(|k| k.adam_beta1 = 1.0);
    new_beta2_negative: "sance_ebm_new", "adam_beta2 = -0.1" => InvalidArgument, "config.adam_beta2", |c| c.new_with(|k| k.adam_beta2 = -0.1);
    new_weight_decay_negative: "sance_ebm_new", "weight_decay = -1" => InvalidArgument, "config.weight_decay", |c| c.new_with(|k| k.weight_decay = -1.0);
    new_grad_clip_inf: "sance_ebm_new", "grad_clip = +Inf" => InvalidArgument, "config.grad_clip", |c| c.new_with(|k| k.grad_clip = f32::INFINITY);
    new_ema_decay_one: "sance_ebm_new", "ema_decay = 1" => InvalidArgument, "config.ema_decay", |c| c.new_with(|k| k.ema_decay = 1.0);
    new_ema_decay_nan: "sance_ebm_new", "ema_decay = NaN" => InvalidArgument, "config.ema_decay", |c| c.new_with(|k| k.ema_decay = f32::NAN);
    new_noise_ratio_zero: "sance_ebm_new", "noise_ratio = 0" => InvalidArgument, "config.noise_ratio", |c| c.new_with(|k| k.noise_ratio = 0.0);
    new_noise_ratio_negative: "sance_ebm_new", "noise_ratio = -1" => InvalidArgument, "config.noise_ratio", |c| c.new_with(|k| k.noise_ratio = -1.0);
    new_noise_ratio_huge: "sance_ebm_new", "noise_ratio = 1e6" => InvalidArgument, "config.noise_ratio", |c| c.new_with(|k| k.noise_ratio = 1e6);
    new_energy_l2_nan: "sance_ebm_new", "energy_l2 = NaN" => InvalidArgument, "config.energy_l2", |c| c.new_with(|k| k.energy_l2 = f32::NAN);
    new_langevin_steps_zero: "sance_ebm_new", "langevin.steps = 0" => InvalidArgument, "config.langevin.steps", |c| c.new_with(|k| k.langevin.steps = 0);
    new_langevin_step_size_zero: "sance_ebm_new", "langevin.step_size = 0" => InvalidArgument, "config.langevin.step_size", |c| c.new_with(|k| k.langevin.step_size = 0.0);
    new_langevin_noise_negative: "sance_ebm_new", "langevin.noise_std = -1" => InvalidArgument, "config.langevin.noise_std", |c| c.new_with(|k| k.langevin.noise_std = -1.0);
    new_langevin_grad_clip_nan: "sance_ebm_new", "langevin.grad_clip = NaN" => InvalidArgument, "config.langevin.grad_clip", |c| c.new_with(|k| k.langevin.grad_clip = f32::NAN);
    new_langevin_grad_clamp_inf: "sance_ebm_new", "langevin.grad_clamp = +Inf" => InvalidArgument, "config.langevin.grad_clamp", |c| c.new_with(|k| k.langevin.grad_clamp = f32::INFINITY);
    new_langevin_clamp_inf: "sance_ebm_new", "langevin.clamp_max = +Inf" => InvalidArgument, "config.langevin.clamp_min/clamp_max", |c| c.new_with(|k| k.langevin.clamp_max = f32::INFINITY);
    new_langevin_init_scale_negative: "sance_ebm_new", "langevin.init_scale = -2" => InvalidArgument, "config.langevin.init_scale", |c| c.new_with(|k| k.langevin.init_scale = -2.0);
    new_reinit_prob_above_one: "sance_ebm_new", "replay_reinit_prob = 1.5" => InvalidArgument, "config.replay_reinit_prob", |c| c.new_with(|k| k.replay_reinit_prob = 1.5);
    new_data_noise_negative: "sance_ebm_new", "data_noise_std = -1" => InvalidArgument, "config.data_noise_std", |c| c.new_with(|k| k.data_noise_std = -1.0);
    new_device_invalid: "sance_ebm_new", "device = -3" => InvalidArgument, "config.device", |c| c.new_with(|k| k.device = -3);
    new_device_absent: "sance_ebm_new", "a CUDA index that does not exist" => Device, "CUDA device", |c| c.new_with(|k| k.device = sance_cuda_device_count());
    train_null_handle: "sance_ebm_train_step", "ebm NULL" => NullPointer, "ebm", |c| unsafe { sance_ebm_train_step(ptr::null_mut(), c.data.as_ptr(), 64, ptr::null_mut()) };
    train_null_data: "sance_ebm_train_step", "data NULL" => NullPointer, "data", |c| unsafe { sance_ebm_train_step(c.h, ptr::null(), 64, ptr::null_mut()) };
    train_batch_zero: "sance_ebm_train_step", "batch = 0" => InvalidArgument, "batch", |c| unsafe { sance_ebm_train_step(c.h, c.data.as_ptr(), 0, ptr::null_mut()) };
    train_batch_overflow: "sance_ebm_train_step", "batch whose byte size overflows" => InvalidArgument, "overflows", |c| unsafe { sance_ebm_train_step(c.h, c.data.as_ptr(), usize::MAX / 2, ptr::null_mut()) };
    train_batch_absurd: "sance_ebm_train_step", "batch = 10^12" => InvalidArgument, "working memory", |c| unsafe { sance_ebm_train_step(c.h, c.data.as_ptr(), 1_000_000_000_000, ptr::null_mut()) };
    train_nan: "sance_ebm_train_step", "NaN in data" => NonFinite, "data[3][1] is NaN", |c| { c.data[7] = f32::NAN; unsafe { sance_ebm_train_step(c.h, c.data.as_ptr(), 64, ptr::null_mut()) } };
    train_inf: "sance_ebm_train_step", "+Inf in data" => NonFinite, "data[10][0] is inf", |c| { c.data[20] = f32::INFINITY; unsafe { sance_ebm_train_step(c.h, c.data.as_ptr(), 64, ptr::null_mut()) } };
    train_neg_inf: "sance_ebm_train_step", "-Inf in data" => NonFinite, "data[63][1] is -inf", |c| { c.data[127] = f32::NEG_INFINITY; unsafe { sance_ebm_train_step(c.h, c.data.as_ptr(), 64, ptr::null_mut()) } };
    train_misaligned: "sance_ebm_train_step", "data not aligned for float" => InvalidArgument, "aligned", |c| unsafe { sance_ebm_train_step(c.h, c.data.as_ptr().byte_add(1), 8, ptr::null_mut()) };
    sample_null_out: "sance_ebm_sample", "out NULL" => NullPointer, "out", |c| unsafe { sance_ebm_sample(c.h, 4, ptr::null(), ptr::null_mut()) };
    sample_n_zero: "sance_ebm_sample", "n = 0" => InvalidArgument, "n must be > 0", |c| { let o = c.out(); unsafe { sance_ebm_sample(c.h, 0, ptr::null(), o) } };
    sample_n_overflow: "sance_ebm_sample", "n whose byte size overflows" => InvalidArgument, "overflows", |c| { let o = c.out(); unsafe { sance_ebm_sample(c.h, usize::MAX / 3, ptr::null(), o) } };
    sample_n_absurd: "sance_ebm_sample", "n = 10^12 (refused before allocating)" => InvalidArgument, "working memory", |c| { let o = c.out(); unsafe { sance_ebm_sample(c.h, 1_000_000_000_000, ptr::null(), o) } };
    sample_steps_zero: "sance_ebm_sample", "params.steps = 0" => InvalidArgument, "params.steps", |c| c.langevin_with(|l| l.steps = 0);
    sample_step_size_nan: "sance_ebm_sample", "params.step_size = NaN" => InvalidArgument, "params.step_size", |c| c.langevin_with(|l| l.step_size = f32::NAN);
    sample_metropolis_three: "sance_ebm_sample", "params.metropolis = 3" => InvalidArgument, "params.metropolis", |c| c.langevin_with(|l| l.metropolis = 3);
    sample_target_without_mala: "sance_ebm_sample", "params.target_acceptance = 0.6 with metropolis = 0" => InvalidArgument, "params.target_acceptance", |c| c.langevin_with(|l| { l.metropolis = 0; l.target_acceptance = 0.6; });
    sample_grad_clip_negative: "sance_ebm_sample", "params.grad_clip = -1" => InvalidArgument, "params.grad_clip", |c| c.langevin_with(|l| l.grad_clip = -1.0);
    sample_grad_clamp_negative: "sance_ebm_sample", "params.grad_clamp = -0.01" => InvalidArgument, "params.grad_clamp", |c| c.langevin_with(|l| l.grad_clamp = -0.01);
    sample_init_unknown: "sance_ebm_sample", "params.init = 3" => InvalidArgument, "params.init", |c| c.langevin_with(|l| raw_enum::<SanceInit>(&mut l.init, 3));
    sample_null_handle: "sance_ebm_sample", "ebm NULL" => NullPointer, "ebm", |c| { let o = c.out(); unsafe { sance_ebm_sample(ptr::null_mut(), 4, ptr::null(), o) } };
    train_population_hot: "sance_ebm_train_step", "langevin at T = 2 with replay_reinit_prob = 0" => InvalidArgument, "temperature", |c| {
        let mut k = c.cfg;
        k.replay_reinit_prob = 0.0;
        k.langevin.noise_std = (4.0 * k.langevin.step_size).sqrt();
        let h = new(&k);
        let s = unsafe { sance_ebm_train_step(h, c.data.as_ptr(), 64, ptr::null_mut()) };
        let p = progress(h);
        unsafe { sance_ebm_free(h) };
        assert_eq!(p.step, 0, "the refused step counted");
        s
    };
    draw_null_handle: "sance_ebm_draw", "ebm NULL" => NullPointer, "ebm", |c| { let o = c.out(); unsafe { sance_ebm_draw(ptr::null_mut(), 4, ptr::null(), o, ptr::null_mut()) } };
    draw_null_out: "sance_ebm_draw", "out NULL" => NullPointer, "out", |c| unsafe { sance_ebm_draw(c.h, 4, ptr::null(), ptr::null_mut(), ptr::null_mut()) };
    draw_n_zero: "sance_ebm_draw", "n = 0" => InvalidArgument, "n must be > 0", |c| { let o = c.out(); unsafe { sance_ebm_draw(c.h, 0, ptr::null(), o, ptr::null_mut()) } };
    draw_n_absurd: "sance_ebm_draw", "n = 10^12 (refused before allocating)" => InvalidArgument, "working memory", |c| { let o = c.out(); unsafe { sance_ebm_draw(c.h, 1_000_000_000_000, ptr::null(), o, ptr::null_mut()) } };
    draw_sampler_unknown: "sance_ebm_draw", "params.sampler = 7" => InvalidArgument, "params.sampler", |c| c.draw_with(|s| s.sampler = 7);
    draw_target_ess_zero: "sance_ebm_draw", "params.target_ess = 0" => InvalidArgument, "params.target_ess", |c| c.draw_with(|s| s.target_ess = 0.0);
    draw_target_ess_one: "sance_ebm_draw", "params.target_ess = 1" => InvalidArgument, "params.target_ess", |c| c.draw_with(|s| s.target_ess = 1.0);
    draw_target_ess_nan: "sance_ebm_draw", "params.target_ess = NaN" => InvalidArgument, "params.target_ess", |c| c.draw_with(|s| s.target_ess = f32::NAN);
    draw_max_temperatures_zero: "sance_ebm_draw", "params.max_temperatures = 0" => InvalidArgument, "params.max_temperatures", |c| c.draw_with(|s| s.max_temperatures = 0);
    draw_moves_steps_zero: "sance_ebm_draw", "params.moves.steps = 0" => InvalidArgument, "params.moves.steps", |c| c.draw_with(|s| s.moves.steps = 0);
    draw_moves_init_unknown: "sance_ebm_draw", "params.moves.init = 3" => InvalidArgument, "params.moves.init", |c| c.draw_with(|s| raw_enum::<SanceInit>(&mut s.moves.init, 3));
    draw_annealed_noiseless: "sance_ebm_draw", "ANNEALED with params.moves.noise_std = 0" => InvalidArgument, "params.moves.noise_std", |c| c.draw_with(|s| { s.sampler = SanceSampler::Annealed as u32; s.moves.metropolis = 0; s.moves.target_acceptance = 0.0; s.moves.noise_std = 0.0; });
    draw_population_untrained: "sance_ebm_draw", "POPULATION on a model with no population" => InvalidArgument, "no population", |c| {
        let fresh = new(&c.cfg);
        let s = SanceSampling { sampler: SanceSampler::Population as u32, ..default_sampling(fresh) };
        let o = c.out();
        let st = unsafe { sance_ebm_draw(fresh, 4, &s, o, ptr::null_mut()) };
        unsafe { sance_ebm_free(fresh) };
        st
    };
    sampling_init_null_params: "sance_sampling_init", "params NULL" => NullPointer, "params", |c| unsafe { sance_sampling_init(ptr::null_mut(), c.h) };
    sampling_init_null_handle: "sance_sampling_init", "ebm NULL" => NullPointer, "ebm", |_c| { let mut s = SanceSampling { sampler: 99, moves: SanceLangevin::default(), target_ess: 0.0, max_temperatures: 0 }; let st = unsafe { sance_sampling_init(&mut s, ptr::null()) }; assert_eq!(s.sampler, 99, "params written"); st };
    sample_from_null_chains: "sance_ebm_sample_from", "chains NULL" => NullPointer, "chains", |c| unsafe { sance_ebm_sample_from(c.h, ptr::null_mut(), 4, ptr::null()) };
    sample_from_null_handle: "sance_ebm_sample_from", "ebm NULL" => NullPointer, "ebm", |c| { let o = c.out(); unsafe { sance_ebm_sample_from(ptr::null_mut(), o, 4, ptr::null()) } };
    sample_from_nan: "sance_ebm_sample_from", "NaN in chains" => NonFinite, "chains[1][0] is NaN", |c| { c.out[2] = f32::NAN; let o = c.out(); let r = unsafe { sance_ebm_sample_from(c.h, o, 4, ptr::null()) }; c.out[2] = SENTINEL; r };
    sample_from_n_zero: "sance_ebm_sample_from", "n = 0" => InvalidArgument, "n must be > 0", |c| { let o = c.out(); unsafe { sance_ebm_sample_from(c.h, o, 0, ptr::null()) } };
    sample_from_bad_params: "sance_ebm_sample_from", "params.noise_std = -Inf" => InvalidArgument, "params.noise_std", |c| { let mut l = c.cfg.langevin; l.noise_std = f32::NEG_INFINITY; let o = c.out(); unsafe { sance_ebm_sample_from(c.h, o, 4, &l) } };
    energy_null_x: "sance_ebm_energy", "x NULL" => NullPointer, "x is NULL", |c| { let o = c.out(); unsafe { sance_ebm_energy(c.h, ptr::null(), 4, o) } };
    energy_null_handle: "sance_ebm_energy", "ebm NULL" => NullPointer, "ebm", |c| { let o = c.out(); unsafe { sance_ebm_energy(ptr::null_mut(), c.data.as_ptr(), 4, o) } };
    energy_null_out: "sance_ebm_energy", "out NULL" => NullPointer, "out", |c| unsafe { sance_ebm_energy(c.h, c.data.as_ptr(), 4, ptr::null_mut()) };
    energy_inf: "sance_ebm_energy", "+Inf in x" => NonFinite, "x[2][1] is inf", |c| { c.data[5] = f32::INFINITY; let o = c.out(); unsafe { sance_ebm_energy(c.h, c.data.as_ptr(), 4, o) } };
    energy_n_zero: "sance_ebm_energy", "n = 0" => InvalidArgument, "n must be > 0", |c| { let o = c.out(); unsafe { sance_ebm_energy(c.h, c.data.as_ptr(), 0, o) } };
    energy_out_overlaps_x: "sance_ebm_energy", "out overlapping x" => InvalidArgument, "out overlaps x", |c| { let x = c.data.as_mut_ptr(); unsafe { sance_ebm_energy(c.h, x, 4, x.add(6)) } };
    energy_grad_grad_overlaps_x: "sance_ebm_energy_grad", "grad overlapping x" => InvalidArgument, "grad overlaps x", |c| { let x = c.data.as_mut_ptr(); let o = c.out(); unsafe { sance_ebm_energy_grad(c.h, x, 4, o, x.add(1)) } };
    energy_grad_energy_overlaps_x: "sance_ebm_energy_grad", "energy overlapping x" => InvalidArgument, "energy overlaps x", |c| { let x = c.data.as_mut_ptr(); let o = c.out(); unsafe { sance_ebm_energy_grad(c.h, x, 4, x, o) } };
    energy_grad_outputs_overlap: "sance_ebm_energy_grad", "energy overlapping grad" => InvalidArgument, "energy overlaps grad", |c| { let o = c.out(); unsafe { sance_ebm_energy_grad(c.h, c.data.as_ptr(), 4, o.add(7), o) } };
    energy_grad_null_grad: "sance_ebm_energy_grad", "grad NULL" => NullPointer, "grad", |c| { let o = c.out(); unsafe { sance_ebm_energy_grad(c.h, c.data.as_ptr(), 4, o, ptr::null_mut()) } };
    energy_grad_null_handle: "sance_ebm_energy_grad", "ebm NULL" => NullPointer, "ebm", |c| { let o = c.out(); unsafe { sance_ebm_energy_grad(ptr::null_mut(), c.data.as_ptr(), 4, ptr::null_mut(), o) } };
    energy_grad_null_x: "sance_ebm_energy_grad", "x NULL" => NullPointer, "x is NULL", |c| { let o = c.out(); unsafe { sance_ebm_energy_grad(c.h, ptr::null(), 4, ptr::null_mut(), o) } };
    energy_grad_overflow: "sance_ebm_energy_grad", "n whose byte size overflows" => InvalidArgument, "overflows", |c| { let o = c.out(); unsafe { sance_ebm_energy_grad(c.h, c.data.as_ptr(), usize::MAX / 2, ptr::null_mut(), o) } };
    energy_grad_nan: "sance_ebm_energy_grad", "NaN in x" => NonFinite, "x[0][0] is NaN", |c| { c.data[0] = f32::NAN; let o = c.out(); unsafe { sance_ebm_energy_grad(c.h, c.data.as_ptr(), 4, ptr::null_mut(), o) } };
    set_lr_nan: "sance_ebm_set_learning_rate", "learning_rate = NaN" => InvalidArgument, "learning_rate", |c| unsafe { sance_ebm_set_learning_rate(c.h, f32::NAN) };
    set_lr_zero: "sance_ebm_set_learning_rate", "learning_rate = 0" => InvalidArgument, "learning_rate", |c| unsafe { sance_ebm_set_learning_rate(c.h, 0.0) };
    set_lr_negative: "sance_ebm_set_learning_rate", "learning_rate = -1" => InvalidArgument, "learning_rate", |c| unsafe { sance_ebm_set_learning_rate(c.h, -1.0) };
    set_lr_null_handle: "sance_ebm_set_learning_rate", "ebm NULL" => NullPointer, "ebm", |_c| unsafe { sance_ebm_set_learning_rate(ptr::null_mut(), 1e-3) };
    refresh_null_handle: "sance_ebm_refresh_noise", "ebm NULL" => NullPointer, "ebm", |_c| unsafe { sance_ebm_refresh_noise(ptr::null_mut()) };
    fit_noise_null_handle: "sance_ebm_fit_noise", "ebm NULL" => NullPointer, "ebm", |c| unsafe { sance_ebm_fit_noise(ptr::null_mut(), c.data.as_ptr(), 64) };
    fit_noise_null_data: "sance_ebm_fit_noise", "data NULL" => NullPointer, "data", |c| unsafe { sance_ebm_fit_noise(c.h, ptr::null(), 64) };
    fit_noise_nan: "sance_ebm_fit_noise", "NaN in data" => NonFinite, "data", |c| { c.data[5] = f32::NAN; unsafe { sance_ebm_fit_noise(c.h, c.data.as_ptr(), 64) } };
    fit_noise_snapshot_model: "sance_ebm_fit_noise", "a model with noise = SANCE_NOISE_SNAPSHOT" => InvalidArgument, "SANCE_NOISE_SNAPSHOT", |c| unsafe { sance_ebm_fit_noise(c.h, c.data.as_ptr(), 64) };
    config_null_out: "sance_ebm_config", "out NULL" => NullPointer, "out", |c| unsafe { sance_ebm_config(c.h, ptr::null_mut()) };
    config_null_handle: "sance_ebm_config", "ebm NULL" => NullPointer, "ebm", |c| unsafe { sance_ebm_config(ptr::null(), &mut c.cfg) };
    progress_null_handle: "sance_ebm_progress", "ebm NULL" => NullPointer, "ebm", |_c| { let mut p = SanceProgress::default(); unsafe { sance_ebm_progress(ptr::null(), &mut p) } };
    progress_null_out: "sance_ebm_progress", "out NULL" => NullPointer, "out", |c| unsafe { sance_ebm_progress(c.h, ptr::null_mut()) };
    device_null_handle: "sance_ebm_device", "ebm NULL" => NullPointer, "ebm", |_c| { let mut d = 0i32; unsafe { sance_ebm_device(ptr::null(), &mut d) } };
    device_null_out: "sance_ebm_device", "out_device NULL" => NullPointer, "out_device", |c| unsafe { sance_ebm_device(c.h, ptr::null_mut()) };
    allreduce_null_handle: "sance_ebm_set_allreduce", "ebm NULL" => NullPointer, "ebm", |_c| unsafe { sance_ebm_set_allreduce(ptr::null_mut(), Some(no_op_sum), ptr::null_mut(), 0, 1) };
    allreduce_rank_too_large: "sance_ebm_set_allreduce", "rank >= world_size" => InvalidArgument, "rank", |c| unsafe { sance_ebm_set_allreduce(c.h, Some(no_op_sum), ptr::null_mut(), 2, 2) };
    allreduce_world_zero: "sance_ebm_set_allreduce", "world_size 0" => InvalidArgument, "world_size", |c| unsafe { sance_ebm_set_allreduce(c.h, Some(no_op_sum), ptr::null_mut(), 0, 0) };
    ais_init_null_params: "sance_ais_init", "params NULL" => NullPointer, "params", |c| unsafe { sance_ais_init(ptr::null_mut(), c.h) };
    ais_init_null_handle: "sance_ais_init", "ebm NULL" => NullPointer, "ebm", |_c| { let mut a = SanceAis::default(); let s = unsafe { sance_ais_init(&mut a, ptr::null()) }; assert_eq!(a, SanceAis::default()); s };
    log_z_null_handle: "sance_ebm_log_z", "ebm NULL" => NullPointer, "ebm", |_c| { let mut z = 0.0; unsafe { sance_ebm_log_z(ptr::null_mut(), ptr::null(), &mut z, ptr::null_mut()) } };
    log_z_null_out: "sance_ebm_log_z", "out_log_z NULL" => NullPointer, "out_log_z", |c| unsafe { sance_ebm_log_z(c.h, ptr::null(), ptr::null_mut(), ptr::null_mut()) };
    log_z_chains_one: "sance_ebm_log_z", "params.chains = 1" => InvalidArgument, "params.chains", |c| c.log_z_with(|a| a.chains = 1);
    log_z_temperatures_zero: "sance_ebm_log_z", "params.temperatures = 0" => InvalidArgument, "params.temperatures", |c| c.log_z_with(|a| a.temperatures = 0);
    log_z_steps_zero: "sance_ebm_log_z", "params.steps = 0" => InvalidArgument, "params.steps", |c| c.log_z_with(|a| a.steps = 0);
    log_z_step_size_nan: "sance_ebm_log_z", "params.step_size = NaN" => InvalidArgument, "params.step_size", |c| c.log_z_with(|a| a.step_size = f32::NAN);
    log_z_step_size_negative: "sance_ebm_log_z", "params.step_size = -0.1" => InvalidArgument, "params.step_size", |c| c.log_z_with(|a| a.step_size = -0.1);
    toy_null_name: "sance_toy_dataset", "name NULL" => NullPointer, "name", |c| { let o = c.out(); unsafe { sance_toy_dataset(ptr::null(), 4, 0, o) } };
    toy_unknown_name: "sance_toy_dataset", "an unknown dataset name" => InvalidArgument, "\"moons\"", |c| { let o = c.out(); unsafe { sance_toy_dataset(c"moons".as_ptr(), 4, 0, o) } };
    toy_non_utf8_name: "sance_toy_dataset", "a non-UTF-8 name" => InvalidArgument, "UTF-8", |c| { let o = c.out(); unsafe { sance_toy_dataset(c"\xff\xfe".as_ptr(), 4, 0, o) } };
    toy_n_zero: "sance_toy_dataset", "n = 0" => InvalidArgument, "n must be > 0", |c| { let o = c.out(); unsafe { sance_toy_dataset(c"rings".as_ptr(), 0, 0, o) } };
    toy_null_out: "sance_toy_dataset", "out NULL" => NullPointer, "out", |_c| unsafe { sance_toy_dataset(c"rings".as_ptr(), 4, 0, ptr::null_mut()) };
    save_null_handle: "sance_ebm_save", "ebm NULL" => NullPointer, "ebm", |c| { let p = c.path("m.safetensors"); unsafe { sance_ebm_save(ptr::null(), p.as_ptr()) } };
    save_null_path: "sance_ebm_save", "path NULL" => NullPointer, "path", |c| unsafe { sance_ebm_save(c.h, ptr::null()) };
    save_empty_path: "sance_ebm_save", "path \"\"" => InvalidArgument, "path is empty", |c| unsafe { sance_ebm_save(c.h, c"".as_ptr()) };
    save_directory: "sance_ebm_save", "a path that is a directory" => Io, "is a directory", |c| { let p = cpath(&c.dir); unsafe { sance_ebm_save(c.h, p.as_ptr()) } };
    save_uncreatable: "sance_ebm_save", "a path whose directory does not exist" => Io, "no/such", |c| { let p = c.path("no/such/m.safetensors"); unsafe { sance_ebm_save(c.h, p.as_ptr()) } };
    clone_null: "sance_ebm_clone", "ebm NULL" => NullPointer, "ebm", |c| unsafe { sance_ebm_clone(ptr::null(), &mut c.new_handle) };
    clone_null_out: "sance_ebm_clone", "out NULL" => NullPointer, "out", |c| unsafe { sance_ebm_clone(c.h, ptr::null_mut()) };
    load_null_path: "sance_ebm_load", "path NULL" => NullPointer, "path", |c| unsafe { sance_ebm_load(ptr::null(), -1, &mut c.new_handle) };
    load_null_out: "sance_ebm_load", "out NULL" => NullPointer, "out", |c| { let p = c.path("m.safetensors"); unsafe { sance_ebm_save(c.h, p.as_ptr()); sance_ebm_load(p.as_ptr(), -1, ptr::null_mut()) } };
    load_missing: "sance_ebm_load", "a file that does not exist" => Io, "absent.safetensors", |c| { let p = c.path("absent.safetensors"); unsafe { sance_ebm_load(p.as_ptr(), -1, &mut c.new_handle) } };
    load_directory: "sance_ebm_load", "a path that is a directory" => Io, "is a directory", |c| { let p = cpath(&c.dir); unsafe { sance_ebm_load(p.as_ptr(), -1, &mut c.new_handle) } };
    load_not_checkpoint: "sance_ebm_load", "a file of random bytes" => Corrupt, "safetensors", |c| { std::fs::write(c.dir.join("r.bin"), [7u8; 100]).unwrap(); let p = c.path("r.bin"); unsafe { sance_ebm_load(p.as_ptr(), -1, &mut c.new_handle) } };
    load_device_invalid: "sance_ebm_load", "device = -7" => InvalidArgument, "device", |c| { let p = c.path("x"); unsafe { sance_ebm_load(p.as_ptr(), -7, &mut c.new_handle) } };
    load_device_absent: "sance_ebm_load", "a CUDA index that does not exist" => Device, "CUDA device", |c| {
        let p = c.path("m.safetensors");
        assert_eq!(unsafe { sance_ebm_save(c.h, p.as_ptr()) }, SanceStatus::Ok);
        unsafe { sance_ebm_load(p.as_ptr(), sance_cuda_device_count(), &mut c.new_handle) }
    };
    train_diverges: "sance_ebm_train_step", "a step whose loss is not finite (absurd learning rate)" => NonFinite, "finite", |c| {
        // A second model that diverges; the probe model `c.h` must be untouched too.
        let mut k = c.cfg;
        k.learning_rate = 1e30;
        let h = new(&k);
        let mut s = SanceStatus::Ok;
        for _ in 0..10 {
            s = unsafe { sance_ebm_train_step(h, c.data.as_ptr(), 64, ptr::null_mut()) };
            if s != SanceStatus::Ok { break; }
        }
        let msg = last_error();
        let ok_after = unsafe { sance_ebm_refresh_noise(h) } == SanceStatus::Ok;
        unsafe { sance_ebm_free(h) };
        assert!(ok_after, "the handle stays usable after a rejected step");
        sance::abi::status::set_last_error(&msg);
        s
    };
}

#[test]
fn docs_table_lists_every_row() {
    let doc =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/errors.md"))
            .unwrap();
    let ids: Vec<&str> =
        doc.lines().filter_map(|l| l.strip_prefix("| `")).filter_map(|l| l.split('`').next()).collect();
    let expected: Vec<&str> = ROWS.iter().map(|r| r.0).collect();
    assert_eq!(ids, expected, "docs/errors.md and tests/bad_input.rs list different rows");
    for (id, entry, input, status) in ROWS {
        let line = doc.lines().find(|l| l.starts_with(&format!("| `{id}`"))).unwrap();
        assert!(
            line.contains(entry) && line.contains(input) && line.contains(&screaming(status)),
            "docs row {id} is stale: {line}"
        );
    }
    assert!(ROWS.len() >= 40, "the table has {} rows", ROWS.len());
}

fn screaming(s: &str) -> String {
    let mut out = String::from("SANCE_STATUS_");
    for (i, ch) in s.chars().enumerate() {
        if ch.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(ch.to_ascii_uppercase());
    }
    out
}

/// Prints the table for docs/errors.md: `cargo test --release --test bad_input -- --ignored --nocapture`.
#[test]
#[ignore]
fn print_docs_table() {
    println!("| id | entry point | bad input | status |\n|---|---|---|---|");
    for (id, entry, input, status) in ROWS {
        println!("| `{id}` | `{entry}` | {input} | `{}` |", screaming(status));
    }
}

#[test]
fn a_panic_inside_a_call_is_caught_and_the_handle_refuses_further_calls() {
    let h = new(&small_config());
    sance::fault::inject_panic();
    let d = data("8gaussians", 8, 0);
    let s = unsafe { sance_ebm_train_step(h, d.as_ptr(), 8, ptr::null_mut()) };
    assert_eq!(s, SanceStatus::Panic);
    assert!(last_error().contains("injected panic"), "{}", last_error());
    let mut e = [0f32; 8];
    let s = unsafe { sance_ebm_energy(h, d.as_ptr(), 8, e.as_mut_ptr()) };
    assert_eq!(s, SanceStatus::Panic, "a poisoned handle refuses calls");
    assert!(last_error().contains("unusable"), "{}", last_error());
    unsafe { sance_ebm_free(h) }; // freeing is still fine
                                  // Other handles are unaffected.
    let g = new(&small_config());
    train(g, 0..2);
    unsafe { sance_ebm_free(g) };
}

/// A call that only reads the model (sample, energy, energy_grad, save, config, progress)
/// leaves it as it was whatever happens inside, so a panic there is reported and the handle
/// stays usable, its random stream included.
#[test]
fn a_panic_inside_a_query_does_not_poison_the_handle() {
    let (h, twin) = (new(&small_config()), new(&small_config()));
    train(h, 0..2);
    train(twin, 0..2);
    let mut out = [0f32; 16];
    sance::fault::inject_panic();
    let s = unsafe { sance_ebm_sample(h, 8, ptr::null(), out.as_mut_ptr()) };
    assert_eq!(s, SanceStatus::Panic);
    assert!(last_error().contains("injected panic"), "{}", last_error());
    sance::fault::inject_panic();
    let d = data("8gaussians", 8, 0);
    let s = unsafe { sance_ebm_energy(h, d.as_ptr(), 8, out.as_mut_ptr()) };
    assert_eq!(s, SanceStatus::Panic);
    // Still usable, and exactly where its twin is.
    train(h, 2..4);
    train(twin, 2..4);
    assert_eq!(bits(&probe(h)), bits(&probe(twin)));
    let (mut a, mut b) = ([0f32; 16], [0f32; 16]);
    assert_eq!(unsafe { sance_ebm_sample(h, 8, ptr::null(), a.as_mut_ptr()) }, SanceStatus::Ok);
    assert_eq!(unsafe { sance_ebm_sample(twin, 8, ptr::null(), b.as_mut_ptr()) }, SanceStatus::Ok);
    assert_eq!(bits(&a), bits(&b), "the random stream was put back");
    unsafe {
        sance_ebm_free(h);
        sance_ebm_free(twin);
    }
}

# Run with: SANCE_LIB=/path/to/libsance.so julia --project=bindings/julia/Sance -e 'using Pkg; Pkg.test()'
# (see docs/julia.md for the libstdc++ preload Julia may need; JULIA_NUM_THREADS=4 makes the
# first testset race real threads on the library's first use).
using Test
using Sance
using Sance.LibSance

small() = Config(device = -1, hidden_width = 16, replay_capacity = 64)

# A reduction over a world of one rank: the sum is the buffer itself.
world_of_one(buf::Ptr{Float32}, n::Csize_t, user::Ptr{Cvoid}) = Int32(0)

@testset "Sance" begin
    # Must run first: nothing before it may have called into the library.
    @testset "first use from many tasks" begin
        # The library is opened on first use; tasks racing to use it first (on several threads
        # when JULIA_NUM_THREADS > 1) must all get the one ABI-checked table.
        tasks = [Threads.@spawn Sance.abi_version() for _ in 1:16]
        @test all(t -> fetch(t) == LibSance.SANCE_ABI_VERSION, tasks)
        @test LibSance.functions() isa LibSance.Functions
        @test LibSance.sym(:sance_version) == LibSance.functions().sance_version != C_NULL
    end

    @testset "library" begin
        @test startswith(Sance.version(), "sance ")
        # The header's version macros, mirrored in LibSance, are the library's version.
        m = match(r"^sance (\d+)\.(\d+)\.(\d+)\b", Sance.version())
        @test m !== nothing
        @test m !== nothing && parse.(UInt32, m.captures) ==
            [LibSance.SANCE_VERSION_MAJOR, LibSance.SANCE_VERSION_MINOR, LibSance.SANCE_VERSION_PATCH]
        @test Sance.abi_version() == LibSance.SANCE_ABI_VERSION
        @test cuda_device_count() >= 0
        @test Sance.status_name(LibSance.SANCE_STATUS_CORRUPT) == "SANCE_STATUS_CORRUPT"
        X = toy_dataset("8gaussians", 100; seed = 3)
        @test size(X) == (2, 100) && all(isfinite, X)
        @test toy_dataset("8gaussians", 100; seed = 3) == X
        err = try toy_dataset("moons", 3); nothing catch ex; ex end
        @test err isa SanceError && err.status == LibSance.SANCE_STATUS_INVALID_ARGUMENT
        @test occursin("moons", err.msg) && occursin("moons", Sance.last_error())
        # The toy datasets' dimensions size their matrices.
        @test toy_dataset_dim("8gaussians") == 2 && toy_dataset_dim("rings") == 2
        @test toy_dataset_dim("gaussians16d") == 16
        @test LibSance.sance_toy_dataset_dim("gaussians16d") == Csize_t(16)
        err = try toy_dataset_dim("moons"); nothing catch ex; ex end
        @test err isa SanceError && err.status == LibSance.SANCE_STATUS_INVALID_ARGUMENT
        @test occursin("moons", err.msg)
        @test LibSance.sance_toy_dataset_dim("moons") == 0 && occursin("moons", Sance.last_error())
        X16 = toy_dataset("gaussians16d", 50; seed = 4)
        @test size(X16) == (16, 50) && all(isfinite, X16)
        @test toy_dataset("gaussians16d", 50; seed = 4) == X16
    end

    @testset "config" begin
        c = Config()
        @test c.abi_version == LibSance.SANCE_ABI_VERSION && c.data_dim == 2
        out = Ref{LibSance.SanceConfig}()
        @test LibSance.sance_config_init(out, LibSance.SANCE_ABI_VERSION) == LibSance.SANCE_STATUS_OK
        @test out[] == c
        # Bindings written for another ABI are refused, and the struct is left untouched.
        other = LibSance.SANCE_ABI_VERSION - UInt32(1)
        buf = fill(0xab, sizeof(LibSance.SanceConfig))
        status = GC.@preserve buf LibSance.sance_config_init(Ptr{LibSance.SanceConfig}(pointer(buf)), other)
        msg = Sance.last_error()
        @test status == LibSance.SANCE_STATUS_INVALID_ARGUMENT
        @test all(==(0xab), buf)
        @test occursin(string(other), msg) && occursin(string(LibSance.SANCE_ABI_VERSION), msg)
        @test LibSance.sance_config_init(Ptr{LibSance.SanceConfig}(C_NULL), LibSance.SANCE_ABI_VERSION) ==
            LibSance.SANCE_STATUS_NULL_POINTER
        img = image_config(1, 28, 28; seed = 3)
        @test img.arch == LibSance.SANCE_ARCH_CONV && (img.channels, img.height, img.width) == (1, 28, 28)
        @test img.noise_update_interval == 1 && (img.langevin.clamp_min, img.langevin.clamp_max) == (-1f0, 1f0)
        @test img.seed == 3
        raw = Ref{LibSance.SanceConfig}()
        @test LibSance.sance_config_init_image(raw, LibSance.SANCE_ABI_VERSION, 1, 28, 28) == LibSance.SANCE_STATUS_OK
        @test raw[] == image_config(1, 28, 28)
        @test_throws SanceError image_config(1, 0, 28)
        @test occursin("config.height", Sance.last_error())
        c = Config(hidden_width = 32, learning_rate = 5e-4, arch = LibSance.SANCE_ARCH_MLP)
        @test c.hidden_width == 32 && c.learning_rate == 5f-4
        @test Langevin(steps = 7).steps == 7
        @test Config(arch = 1).arch == LibSance.SANCE_ARCH_CONV     # enums take their integer values
        # SA-NCE on standardised data, with MALA tuned towards 60 % acceptance, by default.
        @test c.noise == LibSance.SANCE_NOISE_SNAPSHOT && c.langevin.metropolis == 1
        @test c.langevin.target_acceptance == 0.6f0 && c.scaling == LibSance.SANCE_SCALING_AUTO
        @test Config(scaling = 1).scaling == LibSance.SANCE_SCALING_NONE
        @test_throws ArgumentError Config(scaling = 7)                 # not a SanceScaling
        @test (LibSance.SANCE_WARNING_COARSE_STEP, LibSance.SANCE_WARNING_FROZEN_STEP, LibSance.SANCE_WARNING_OUT_OF_REACH) ==
            (1, 2, 4)
        @test Config(noise = 1).noise == LibSance.SANCE_NOISE_GAUSSIAN
        @test c.ema_decay == 0.99f0 && c.replay_reinit_prob == 0f0 && Config(ema_decay = 0).ema_decay == 0f0
        @test Langevin(metropolis = 1).metropolis == 1
        @test Langevin().grad_clamp == 0f0 && Langevin(grad_clamp = 0.03).grad_clamp == 0.03f0
        @test LibSance.SANCE_NOISE_FULL_COVARIANCE_MAX_DIM == 1024
        @test_throws ArgumentError Config(no_such_field = 1)
        err = try EBM(Config(learning_rate = -1)); nothing catch ex; ex end
        @test err isa SanceError && err.status == LibSance.SANCE_STATUS_INVALID_ARGUMENT
        @test occursin("config.learning_rate", err.msg)
        # A target acceptance rate needs MALA.
        err = try EBM(Config(langevin = Langevin(metropolis = 0))); nothing catch ex; ex end
        @test err isa SanceError && err.status == LibSance.SANCE_STATUS_INVALID_ARGUMENT
        @test occursin("config.langevin.target_acceptance", err.msg)
        err = try EBM(Config(device = 64)); nothing catch ex; ex end
        @test err.status == LibSance.SANCE_STATUS_DEVICE
    end

    @testset "training and sampling" begin
        ebm = EBM(small())
        @test sample_size(ebm) == 2
        @test config(ebm).hidden_width == 16 && config(ebm).device == -1 && Sance.device(ebm) == -1
        # A world of one rank: the sum is the buffer itself.
        solo = EBM(Config(hidden_width = 16, device = -1))
        one = @cfunction(world_of_one, Int32, (Ptr{Float32}, Csize_t, Ptr{Cvoid}))
        set_allreduce!(solo, one, nothing, 0, 1)
        @test train_step!(solo, toy_dataset("8gaussians", 32; seed = 3)).step == 1
        @test_throws SanceError set_allreduce!(solo, one, nothing, 1, 1)
        set_allreduce!(solo, nothing)
        close(solo)
        X = toy_dataset("8gaussians", 64; seed = 1)
        s = train_step!(ebm, X)
        @test s.step == 1 && s.refreshed == 1 && isfinite(s.loss)
        @test s.step_size == small().langevin.step_size && s.warnings == 0   # the configured step, no warnings
        tuned = config(ebm).langevin.step_size                               # tuned by the first step
        s = train_step!(ebm, Float64.(X))      # converted to Float32
        @test s.step == 2 && 0 < s.acceptance_rate <= 1
        @test s.step_size == tuned && s.warnings == 0
        # fit_noise! is for GAUSSIAN noise only: on this SNAPSHOT model it throws, changing nothing.
        e_before = energy(ebm, X)
        err = try fit_noise!(ebm, X); nothing catch ex; ex end
        @test err isa SanceError && err.status == LibSance.SANCE_STATUS_INVALID_ARGUMENT
        @test occursin("SANCE_NOISE_SNAPSHOT", err.msg)
        @test energy(ebm, X) == e_before && progress(ebm).step == 2 && progress(ebm).refresh_count == 1
        @test progress(ebm).step == 2 && progress(ebm).replay_len == 64
        @test progress(ebm).refresh_ess == 0 && progress(ebm).refresh_nonfinite == 0
        refresh_noise!(ebm)
        @test progress(ebm).refresh_count == 2 && progress(ebm).log_z_ratio == 0
        @test 1 <= progress(ebm).refresh_ess <= 64 && progress(ebm).refresh_nonfinite == 0
        set_learning_rate!(ebm, 5e-4)
        @test config(ebm).learning_rate == 5f-4
        Xbad = copy(X); Xbad[2, 3] = NaN
        err = try train_step!(ebm, Xbad); nothing catch ex; ex end
        @test err.status == LibSance.SANCE_STATUS_NON_FINITE && occursin("data[2][1]", err.msg)
        @test_throws SanceError train_step!(ebm, zeros(Float32, 3))

        S = Sance.sample(ebm, 10)
        @test size(S) == (2, 10) && all(isfinite, S)
        @test size(Sance.sample(ebm, 5; steps = 3)) == (2, 5)
        @test_throws SanceError Sance.sample(ebm, 5; step_size = -1)
        C = copy(X)
        sample!(ebm, C; steps = 5)
        @test C != X && all(isfinite, C)
        S = Sance.sample(ebm, 8; steps = 5, metropolis = 0, target_acceptance = 0)  # unadjusted for this call
        @test size(S) == (2, 8) && all(isfinite, S)
        err = try Sance.sample(ebm, 5; metropolis = 0); nothing catch ex; ex end
        @test err isa SanceError && occursin("params.target_acceptance", err.msg)
        err = try Sance.sample(ebm, 5; metropolis = 1, noise_std = 0); nothing catch ex; ex end
        @test err isa SanceError && occursin("metropolis", err.msg)

        e = energy(ebm, X)
        @test length(e) == 64 && all(isfinite, e)
        e2, g = energy_grad(ebm, X)
        @test e2 == e && size(g) == size(X)
        # The gradient matches central differences.
        h = 1f-2
        Xp = copy(X); Xp[1, :] .+= h
        Xm = copy(X); Xm[1, :] .-= h
        fd = (energy(ebm, Xp) .- energy(ebm, Xm)) ./ (2h)
        @test maximum(abs.(fd .- g[1, :]) ./ (1 .+ abs.(g[1, :]))) < 2e-2

        dir = mktempdir()
        path = joinpath(dir, "m.safetensors")
        Sance.save(ebm, path)
        back = Sance.load(path; device = -1)
        @test energy(back, X) == e && progress(back).step == progress(ebm).step
        err = try Sance.load(joinpath(dir, "absent")); nothing catch ex; ex end
        @test err.status == LibSance.SANCE_STATUS_IO

        close(back)
        close(back)                             # idempotent
        @test !isopen(back)
        err = try energy(back, X); nothing catch ex; ex end
        @test err isa SanceError && err.status == LibSance.SANCE_STATUS_NULL_POINTER
        close(ebm)
    end

    @testset "normaliser (AIS)" begin
        # A briefly trained 2-D model.
        ebm = EBM(small())
        for t in 0:19
            train_step!(ebm, toy_dataset("8gaussians", 64; seed = 100 + t))
        end
        a = ais_defaults(ebm)
        @test a isa LibSance.SanceAis
        @test a.chains == 512 && a.temperatures == 1000 && a.steps == 1    # the defaults for 2-D samples
        @test isfinite(a.step_size) && a.step_size > 0
        @test ais_defaults(ebm).step_size == a.step_size                   # reproducible
        b = ais_defaults(ebm; chains = 64, temperatures = 100)             # fields replaced
        @test b.chains == 64 && b.temperatures == 100 && b.steps == a.steps && b.step_size == a.step_size
        @test_throws ArgumentError ais_defaults(ebm; no_such_field = 1)
        out = Ref{LibSance.SanceAis}()
        @test LibSance.sance_ais_init(out, ebm) == LibSance.SANCE_STATUS_OK && out[] == a
        X = toy_dataset("rings", 100; seed = 3)
        e = energy(ebm, X)
        z = log_z(ebm)
        @test z isa NamedTuple{(:log_z, :std_error), Tuple{Float64, Float64}}
        @test isfinite(z.log_z) && isfinite(z.std_error) && z.std_error > 0
        @test log_z(ebm) == z                                   # the same model, the same estimate
        @test log_z(ebm; params = a) == z                       # no params: ais_defaults(ebm)
        @test energy(ebm, X) == e && progress(ebm).step == 20   # the model is unchanged
        q = log_z(ebm; params = b)
        @test isfinite(q.log_z) && q.std_error > 0
        err = try log_z(ebm; params = ais_defaults(ebm; chains = 1)); nothing catch ex; ex end
        @test err isa SanceError && err.status == LibSance.SANCE_STATUS_INVALID_ARGUMENT
        @test occursin("params.chains", err.msg)
        close(ebm)
    end

    @testset "drawing (sance_ebm_draw)" begin
        ebm = EBM(small())
        for t in 0:4
            train_step!(ebm, toy_dataset("8gaussians", 64; seed = 200 + t))
        end
        d = sampling_defaults(ebm)
        @test d isa LibSance.SanceSampling
        @test LibSance.SanceSampler(d.sampler) == LibSance.SANCE_SAMPLER_AUTO
        @test d.target_ess == 0.5f0 && d.max_temperatures == 1000
        @test d.moves == config(ebm).langevin                              # the configured sampler
        out = Ref{LibSance.SanceSampling}()
        @test LibSance.sance_sampling_init(out, ebm) == LibSance.SANCE_STATUS_OK && out[] == d
        a = sampling_defaults(ebm; sampler = LibSance.SANCE_SAMPLER_ANNEALED, max_temperatures = 500)
        @test a.sampler == UInt32(3) && a.max_temperatures == 500 && a.moves == d.moves
        @test sampling_defaults(ebm; sampler = 1).sampler == UInt32(LibSance.SANCE_SAMPLER_FRESH)
        @test_throws ArgumentError sampling_defaults(ebm; no_such_field = 1)
        X = toy_dataset("rings", 100; seed = 3)
        e = energy(ebm, X)
        # No params: AUTO, which is POPULATION on a trained model.
        S, r = draw(ebm, 10)
        @test S isa Matrix{Float32} && size(S) == (2, 10) && all(isfinite, S)
        @test r isa LibSance.SanceDrawReport
        @test LibSance.SanceSampler(r.sampler) == LibSance.SANCE_SAMPLER_POPULATION
        @test r.temperatures == 0 && isnan(r.log_z) && isnan(r.log_z_std_error)
        # over the proposals of the population's density estimate (4n clamped to [1024, 65536]:
        # 1,024 at n = 10), or its chains themselves
        @test isfinite(r.ess) && 1 - 1e-9 <= r.ess <= 1024 + 1e-9
        # ANNEALED: tempered SMC, with log Z as a by-product.
        S, r = draw(ebm, 64; params = a)
        @test size(S) == (2, 64) && all(isfinite, S)
        @test LibSance.SanceSampler(r.sampler) == LibSance.SANCE_SAMPLER_ANNEALED
        @test 1 <= r.temperatures <= 500
        @test isfinite(r.log_z) && isfinite(r.log_z_std_error) && r.log_z_std_error >= 0
        @test isfinite(r.ess) && 0 < r.acceptance <= 1
        # FRESH: nothing is weighted.
        S, r = draw(ebm, 8; params = sampling_defaults(ebm; sampler = LibSance.SANCE_SAMPLER_FRESH))
        @test size(S) == (2, 8) && all(isfinite, S)
        @test LibSance.SanceSampler(r.sampler) == LibSance.SANCE_SAMPLER_FRESH && isnan(r.ess) && isnan(r.log_z)
        @test energy(ebm, X) == e && progress(ebm).step == 5          # drawing leaves the model unchanged
        # The same model gives the same draws (a copy inherits the count of draws).
        twin = copy(ebm)
        @test draw(twin, 6)[1] == draw(ebm, 6)[1]
        err = try draw(ebm, 4; params = sampling_defaults(ebm; target_ess = 1.5)); nothing catch ex; ex end
        @test err isa SanceError && err.status == LibSance.SANCE_STATUS_INVALID_ARGUMENT
        @test occursin("params.target_ess", err.msg)
        close(twin)
        close(ebm)
        # An untrained model has no population: AUTO is ANNEALED, POPULATION is refused.
        fresh = EBM(small())
        p = sampling_defaults(fresh; sampler = LibSance.SANCE_SAMPLER_POPULATION)
        err = try draw(fresh, 4; params = p); nothing catch ex; ex end
        @test err isa SanceError && err.status == LibSance.SANCE_STATUS_INVALID_ARGUMENT
        @test occursin("no population", err.msg)
        S, r = draw(fresh, 16; params = sampling_defaults(fresh; moves = Langevin(steps = 2)))
        @test size(S) == (2, 16) && all(isfinite, S)
        @test LibSance.SanceSampler(r.sampler) == LibSance.SANCE_SAMPLER_ANNEALED && r.temperatures >= 1
        @test isfinite(r.log_z)
        @test progress(fresh).step == 0 && progress(fresh).replay_len == 0
        close(fresh)
    end

    @testset "unadjusted Langevin, unscaled" begin
        ula = Langevin(metropolis = 0, target_acceptance = 0)
        ebm = EBM(Config(device = -1, hidden_width = 16, replay_capacity = 64, langevin = ula,
                         scaling = LibSance.SANCE_SCALING_NONE))
        @test config(ebm).langevin.metropolis == 0 && config(ebm).scaling == LibSance.SANCE_SCALING_NONE
        s = train_step!(ebm, toy_dataset("8gaussians", 64; seed = 1))
        @test s.step == 1 && isfinite(s.loss)
        @test s.acceptance_rate == 1                            # unadjusted Langevin rejects nothing
        s = train_step!(ebm, toy_dataset("8gaussians", 64; seed = 2))
        @test s.step_size == ula.step_size == config(ebm).langevin.step_size   # no target: a fixed step
        close(ebm)
    end

    @testset "classic NCE (GAUSSIAN noise)" begin
        ebm = EBM(Config(device = -1, hidden_width = 16, data_dim = 16, noise = LibSance.SANCE_NOISE_GAUSSIAN))
        @test config(ebm).noise == LibSance.SANCE_NOISE_GAUSSIAN && sample_size(ebm) == 16
        X = toy_dataset("gaussians16d", 64; seed = 5)          # 16 × 64
        @test fit_noise!(ebm, X) === nothing
        fit_noise!(ebm, Float64.(X))                           # converted to Float32; replaces the fit
        for t in 1:3
            s = train_step!(ebm, X)
            @test s.step == t && isfinite(s.loss)
            @test s.acceptance_rate == 1 && s.langevin_grad_norm == 0
        end
        err = try refresh_noise!(ebm); nothing catch ex; ex end
        @test err isa SanceError && err.status == LibSance.SANCE_STATUS_INVALID_ARGUMENT
        @test occursin("SANCE_NOISE_GAUSSIAN", err.msg)
        err = try fit_noise!(ebm, X[:, 1:1]); nothing catch ex; ex end
        @test err isa SanceError && err.status == LibSance.SANCE_STATUS_INVALID_ARGUMENT
        @test_throws SanceError fit_noise!(ebm, zeros(Float32, 20))
        @test progress(ebm).step == 3
        close(ebm)
    end

    @testset "images are W×H×C×N" begin
        c = Config(arch = LibSance.SANCE_ARCH_CONV, channels = 3, height = 6, width = 5, hidden_width = 4,
                   hidden_layers = 1, device = -1, langevin = Langevin(steps = 3, clamp_min = -1, clamp_max = 1))
        ebm = EBM(c)
        @test sample_size(ebm) == 90
        imgs = rand(Float32, 5, 6, 3, 8) .* 2 .- 1
        @test train_step!(ebm, imgs).step == 1
        S = Sance.sample(ebm, 4)
        @test size(S) == (5, 6, 3, 4) && all(-1 .<= S .<= 1)
        e, g = energy_grad(ebm, imgs)
        @test length(e) == 8 && size(g) == size(imgs)
        close(ebm)
    end

    @testset "copy (sance_ebm_clone)" begin
        ebm = EBM(Config(device = -1, hidden_width = 16))
        X = toy_dataset("rings", 64; seed = 1)
        train_step!(ebm, X)
        twin = copy(ebm)
        @test energy(twin, X) == energy(ebm, X) && progress(twin).step == progress(ebm).step
        a = train_step!(twin, X)
        @test progress(ebm).step == 1                         # the original is untouched
        b = train_step!(ebm, X)
        @test a.loss == b.loss && energy(twin, X) == energy(ebm, X)
        @test Sance.sample(twin, 5) == Sance.sample(ebm, 5)  # same random stream
        close(twin)
        @test_throws SanceError copy(twin)
        close(ebm)
    end

    @testset "Evaluator (libsance_eval, no libtorch)" begin
        ebm = EBM(Config(device = -1, data_dim = 3, hidden_width = 32, hidden_layers = 2))
        X = randn(Float32, 3, 64)
        for t in 1:5
            train_step!(ebm, X)
        end
        path = joinpath(mktempdir(), "force.safetensors")
        Sance.save(ebm, path)
        m = Evaluator(path)
        @test sample_size(m) == 3
        P = randn(Float32, 3, 100)
        e_ref, g_ref = energy_grad(ebm, P)
        e, g = energy_grad(m, P)
        @test size(g) == (3, 100)
        @test maximum(abs.(e .- e_ref)) <= 1e-5 * maximum(abs.(e_ref))
        @test maximum(abs.(g .- g_ref)) <= 1e-5 * maximum(abs.(g_ref))
        @test energy(m, P) == e
        grad = zeros(Float32, 3)
        e1 = energy_grad!(grad, m, P[:, 1])
        @test abs(e1 - e_ref[1]) <= 1e-5 * maximum(abs.(e_ref))
        @test maximum(abs.(grad .- g_ref[:, 1])) <= 1e-5 * maximum(abs.(g_ref))
        # One model, many threads.
        results = fetch.([Threads.@spawn energy_grad(m, P) for _ in 1:4])
        @test all(r -> r[1] == e && r[2] == g, results)
        err = try Evaluator(joinpath(mktempdir(), "absent.safetensors")); nothing catch ex; ex end
        @test err isa EvalError && err.status == LibSance.SANCE_STATUS_IO
        @test occursin("sance_eval_load", err.msg) && occursin("cannot read", err.msg)
        conv = EBM(Config(arch = LibSance.SANCE_ARCH_CONV, channels = 1, height = 6, width = 6, hidden_width = 4,
                          hidden_layers = 1, device = -1))
        cpath = joinpath(mktempdir(), "conv.safetensors")
        Sance.save(conv, cpath)
        err = try Evaluator(cpath); nothing catch ex; ex end
        @test err isa EvalError && err.status == LibSance.SANCE_STATUS_INVALID_ARGUMENT
        @test occursin("MLP energies only", err.msg)
        bad = copy(P)
        bad[2, 7] = NaN32
        err = try energy_grad(m, bad); nothing catch ex; ex end
        @test err isa EvalError && err.status == LibSance.SANCE_STATUS_NON_FINITE && occursin("x[6][1]", err.msg)
        @test occursin("x[6][1]", Sance.eval_last_error())
        @test_throws DimensionMismatch energy_grad(m, zeros(Float32, 4))
        close(m)
        @test !isopen(m)
        @test_throws EvalError sample_size(m)
        close(m)                                              # twice is fine
        close(conv)
        close(ebm)
    end
end

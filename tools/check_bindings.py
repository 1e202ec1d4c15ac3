#!/usr/bin/env python3
"""Checks the C++ and Julia bindings against include/sance.h, statically.

Julia cannot be installed on our machines, so this is what keeps bindings/julia honest:
- every C function has exactly one `ccall(sym(:name), Ret, (Args...), ...)` in LibSance.jl,
  with the same number of arguments and matching types, and every ccall names a C function;
- every C struct is mirrored in LibSance.jl with the same fields, in the same order, of
  matching types; every C enum has a Julia @enum with the same values; every integer
  `#define SANCE_*` has a `const` of the same value;
- LibSance.jl's `struct Functions` (the cached function pointers that `sym(:name)` reads)
  has one field per ccall'd function;
- every C function is wrapped by bindings/cpp's sance.hpp and by the idiomatic Sance.jl, and
  each wrapper is exercised by the C++ and Julia tests.

`--self-test` changes a field or an argument on one side only, in memory, in several ways,
and checks that each change is caught. The last line is "N passed, M failed".
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADER = ROOT / "include/sance.h"
LIBSANCE = ROOT / "bindings/julia/Sance/src/LibSance.jl"
SANCE_JL = ROOT / "bindings/julia/Sance/src/Sance.jl"
RUNTESTS = ROOT / "bindings/julia/Sance/test/runtests.jl"
HPP = ROOT / "bindings/cpp/include/sance/sance.hpp"
CPP_TEST = ROOT / "tests/cpp/test_sance.cpp"
# libsance_eval: its own header, 1:1 Julia module, C++ header and test; SanceStatus is shared
# with LibSance.jl, whose enums and constants it may use.
EVAL_HEADER = ROOT / "include/sance_eval.h"
LIBSANCE_EVAL = ROOT / "bindings/julia/Sance/src/LibSanceEval.jl"
EVAL_HPP = ROOT / "bindings/cpp/include/sance/eval.hpp"
EVAL_CPP_TEST = ROOT / "tests/cpp/test_eval.cpp"
EVAL_CPP_NAMES = {
    "sance_eval_load": ("sance_eval_load(", "sance::Eval ev("),
    "sance_eval_energy_grad": ("sance_eval_energy_grad(", ".energy_grad("),
    "sance_eval_dim": ("sance_eval_dim(", ".dim()"),
    "sance_eval_free": ("sance_eval_free(", "std::move(ev)"),
    "sance_eval_last_error": ("sance_eval_last_error(", "sance::EvalError"),
}
EVAL_JULIA_NAMES = {
    "sance_eval_load": "Evaluator(",
    "sance_eval_energy_grad": "energy_grad!(",
    "sance_eval_dim": "sample_size(m)",
    "sance_eval_free": "close(m)",
    "sance_eval_last_error": "Sance.eval_last_error(",
}

SCALARS = {
    "void": {"Cvoid"},
    "int32_t": {"Int32", "Cint"},
    "uint32_t": {"UInt32", "Cuint"},
    "uint64_t": {"UInt64"},
    "size_t": {"Csize_t"},
    "float": {"Float32", "Cfloat"},
    "double": {"Float64", "Cdouble"},
}

# C function -> how the C++ wrapper and its test name it (a substring each must contain).
CPP_NAMES = {
    "sance_config_init": ("sance_config_init(", "sance::Config"),
    "sance_config_init_image": ("sance_config_init_image(", "sance::Config::image("),
    "sance_ebm_new": ("sance_ebm_new(", "sance::Ebm m("),
    "sance_ebm_free": ("sance_ebm_free(", "other = std::move(moved)"),
    "sance_ebm_load": ("sance_ebm_load(", "Ebm::load("),
    "sance_last_error": ("sance_last_error(", "sance::last_error("),
    "sance_status_name": ("sance_status_name(", "sance::status_name("),
    "sance_version": ("sance_version(", "sance::version("),
    "sance_abi_version": ("sance_abi_version(", "sance::abi_version("),
    "sance_cuda_device_count": ("sance_cuda_device_count(", "sance::cuda_device_count("),
    "sance_toy_dataset": ("sance_toy_dataset(", "sance::toy_dataset("),
    "sance_toy_dataset_dim": ("sance_toy_dataset_dim(", "sance::toy_dataset_dim("),
    "sance_ebm_fit_noise": ("sance_ebm_fit_noise(", ".fit_noise("),
    "sance_ais_init": ("sance_ais_init(", ".ais_defaults("),
    "sance_sampling_init": ("sance_sampling_init(", ".sampling_defaults("),
    "sance_ebm_draw": ("sance_ebm_draw(", ".draw("),
}
# C function -> the idiomatic Julia name its test must call.
JULIA_NAMES = {
    "sance_config_init": "Config(",
    "sance_config_init_image": "image_config(",
    "sance_ebm_new": "EBM(",
    "sance_ebm_free": "close(",
    "sance_ebm_train_step": "train_step!(",
    "sance_ebm_refresh_noise": "refresh_noise!(",
    "sance_ebm_fit_noise": "fit_noise!(",
    "sance_ebm_set_learning_rate": "set_learning_rate!(",
    "sance_ebm_sample": "sample(",
    "sance_ebm_sample_from": "sample!(",
    "sance_ebm_energy": "energy(",
    "sance_ebm_energy_grad": "energy_grad(",
    "sance_ais_init": "ais_defaults(",
    "sance_ebm_log_z": "log_z(",
    "sance_sampling_init": "sampling_defaults(",
    "sance_ebm_draw": "draw(",
    "sance_ebm_progress": "progress(",
    "sance_ebm_sample_size": "sample_size(",
    "sance_ebm_config": "config(",
    "sance_ebm_device": "device(",
    "sance_ebm_set_allreduce": "set_allreduce!(",
    "sance_ebm_save": "save(",
    "sance_ebm_load": "Sance.load(",
    "sance_ebm_clone": "copy(",
    "sance_toy_dataset": "toy_dataset(",
    "sance_toy_dataset_dim": "toy_dataset_dim(",
    "sance_last_error": "Sance.last_error(",
    "sance_status_name": "Sance.status_name(",
    "sance_version": "Sance.version(",
    "sance_abi_version": "Sance.abi_version(",
    "sance_cuda_device_count": "cuda_device_count(",
}


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def parse_header(text):
    text = strip_comments(text)
    enums = {}
    for body, name in re.findall(r"typedef enum \{(.*?)\}\s*(\w+);", text, re.S):
        enums[name] = {k: int(v) for k, v in re.findall(r"(\w+)\s*=\s*(-?\d+)", body)}
    structs = {}
    for body, name in re.findall(r"typedef struct \{(.*?)\}\s*(\w+);", text, re.S):
        fields = []
        for decl in body.split(";"):
            decl = " ".join(decl.split())
            if decl:
                m = re.match(r"(.+?)\s*(\w+)$", decl)
                fields.append((m.group(2), m.group(1).strip()))
        structs[name] = fields
    opaque = set(re.findall(r"typedef struct (\w+) \1;", text))
    macros = {k: int(v) for k, v in re.findall(r"^#define (SANCE_\w+) (-?\d+)$", text, re.M)}
    functions = {}
    for ret, name, args in re.findall(r"([\w \*]+?)\s*\b(sance_\w+)\(([^)]*)\);", text, re.S):
        args = " ".join(args.split())
        params = [] if args in ("", "void") else [a.strip() for a in args.split(",")]
        types = [re.match(r"(.+?)\s*\w+$", p).group(1).strip() for p in params]
        functions[name] = (" ".join(ret.split()), types)
    return enums, structs, opaque, functions, macros


def julia_types(ctype, named):
    """The Julia spellings a C type may have in LibSance.jl."""
    t = " ".join(ctype.replace("const", " ").split())
    stars = t.count("*")
    base = t.replace("*", "").strip()
    if base == "char" and stars == 1:
        return {"Cstring"}
    if base in SCALARS:
        inner = SCALARS[base]
    elif base in named:
        inner = {base}
    else:
        return set()
    for _ in range(stars):
        inner = {f"Ptr{{{x}}}" for x in inner} | {f"Ref{{{x}}}" for x in inner}
    return inner


def split_top(s):
    """Splits a Julia argument tuple's text on top-level commas."""
    parts, depth, cur = [], 0, ""
    for ch in s:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return parts


def parse_julia(text):
    structs = {}
    for name, body in re.findall(r"^struct (\w+)\n(.*?)^end", text, re.S | re.M):
        structs[name] = [tuple(x.strip() for x in line.split("::")) for line in body.strip().splitlines() if "::" in line]
    enums = {}
    for name, body in re.findall(r"@enum (\w+)::\w+ begin\n(.*?)\nend", text, re.S):
        enums[name] = {k: int(v) for k, v in re.findall(r"(\w+)\s*=\s*(-?\d+)", body)}
    ccalls = {}
    for name, ret, args in re.findall(r"ccall\(sym\(:(\w+)\),\s*([^,]+?),\s*\(([^)]*)\)", text):
        ccalls.setdefault(name, []).append((ret.strip(), split_top(args)))
    consts = {k: int(v) for k, v in re.findall(r"^const (SANCE_\w+) = (?:\w+\()?(-?\d+)\)?$", text, re.M)}
    return structs, enums, ccalls, consts


def check(header_text, libsance_text, sance_jl, runtests, hpp, cpp_test, module="LibSance",
          cpp_names=None, julia_names=None, shared_text=""):
    """Returns (checks made, list of problems). `shared_text`: Julia source whose enums and
    constants the module uses without defining them (LibSance.jl's, for LibSanceEval.jl)."""
    cpp_names = CPP_NAMES if cpp_names is None else cpp_names
    julia_names = JULIA_NAMES if julia_names is None else julia_names
    enums, structs, opaque, functions, macros = parse_header(header_text)
    jstructs, jenums, ccalls, consts = parse_julia(libsance_text)
    _, shared_enums, _, shared_consts = parse_julia(shared_text)
    jenums = {**shared_enums, **jenums}
    consts = {**shared_consts, **consts}
    # Function pointer types (typedef R (*Name)(...);): a Ptr{Cvoid} alias of the same name in Julia.
    fnptrs = set(re.findall(r"typedef [^;(]*\(\*(\w+)\)\(", header_text))
    named = set(enums) | set(structs) | opaque | fnptrs
    problems, n = [], 0
    for name in sorted(fnptrs):
        n += 1
        if not re.search(rf"^const {name} = Ptr{{Cvoid}}$", libsance_text, re.M):
            problems.append(f"{name}: function pointer type without `const {name} = Ptr{{Cvoid}}` in LibSance.jl")

    def need(cond, msg):
        nonlocal n
        n += 1
        if not cond:
            problems.append(msg)

    for name, values in enums.items():
        need(jenums.get(name) == values, f"enum {name}: Julia has {jenums.get(name)}, header has {values}")
    for name, fields in structs.items():
        jf = jstructs.get(name)
        need(jf is not None, f"struct {name} is not mirrored in LibSance.jl")
        if jf is None:
            continue
        need([f for f, _ in jf] == [f for f, _ in fields],
             f"struct {name}: fields {[f for f, _ in jf]} differ from the header's {[f for f, _ in fields]}")
        for (fname, ctype), (jname, jtype) in zip(fields, jf):
            need(jtype in julia_types(ctype, named) - {t for t in julia_types(ctype, named) if t.startswith("Ref")},
                 f"struct {name}.{fname}: Julia type {jtype} does not match C type {ctype}")
    for name, (ret, args) in functions.items():
        calls = ccalls.get(name, [])
        need(len(calls) == 1, f"{name}: {len(calls)} ccall(s) in LibSance.jl, expected 1")
        if len(calls) != 1:
            continue
        jret, jargs = calls[0]
        need(jret in julia_types(ret, named), f"{name}: returns {jret} in Julia, {ret} in C")
        need(len(jargs) == len(args), f"{name}: {len(jargs)} arguments in Julia, {len(args)} in C")
        for i, (c, j) in enumerate(zip(args, jargs)):
            need(j in julia_types(c, named), f"{name}: argument {i + 1} is {j} in Julia, {c} in C")
        need(f"{module}.{name}(" in sance_jl, f"{name}: not wrapped in Sance.jl")
        need(julia_names.get(name, "\0") in runtests, f"{name}: its Julia wrapper is not exercised by runtests.jl")
        in_hpp, in_test = cpp_names.get(name, (f"{name}(", "." + name.replace("sance_ebm_", "") + "("))
        need(in_hpp in hpp, f"{name}: not wrapped in the C++ header")
        need(in_test in cpp_test, f"{name}: its C++ wrapper is not exercised by tests/cpp ({in_test!r})")
    for name in ccalls:
        need(name in functions, f"{module}.jl calls {name}, which the header does not declare")
    for name, value in macros.items():
        need(consts.get(name) == value, f"#define {name} {value}: LibSance.jl has {consts.get(name)}")
    table = [f for f, _ in jstructs.get("Functions", [])]
    need(sorted(table) == sorted(ccalls),
         f"struct Functions (the pointers sym() reads) has {sorted(set(table) ^ set(ccalls))} too many or too few")
    return n, problems


def header_text(path):
    """A header with its local includes (`#include "sance_status.h"`) inlined, as C sees it."""
    return re.sub(r'#include "([\w.]+)"', lambda m: header_text(path.parent / m.group(1)), path.read_text())


def sources():
    return [header_text(HEADER)] + [p.read_text() for p in (LIBSANCE, SANCE_JL, RUNTESTS, HPP, CPP_TEST)]


def check_eval(eval_header=None, libsance_eval=None, eval_hpp=None):
    """check() for libsance_eval's header against its own bindings."""
    h = header_text(EVAL_HEADER) if eval_header is None else eval_header
    lj = LIBSANCE_EVAL.read_text() if libsance_eval is None else libsance_eval
    hpp = EVAL_HPP.read_text() if eval_hpp is None else eval_hpp
    return check(h, lj, SANCE_JL.read_text(), RUNTESTS.read_text(), hpp, EVAL_CPP_TEST.read_text(),
                 module="LibSanceEval", cpp_names=EVAL_CPP_NAMES, julia_names=EVAL_JULIA_NAMES,
                 shared_text=LIBSANCE.read_text())


def self_test():
    """Each one-sided change must be caught; the unchanged sources must pass."""
    h, lj, sj, rt, hpp, ct = sources()
    mutations = {
        "Julia field type": (h, lj.replace("    hidden_width::UInt32", "    hidden_width::UInt64"), sj, rt, hpp, ct),
        "Julia field order": (h, lj.replace("    channels::UInt32\n    height::UInt32", "    height::UInt32\n    channels::UInt32"), sj, rt, hpp, ct),
        "Julia field removed": (h, lj.replace("    replay_len::UInt64\n", ""), sj, rt, hpp, ct),
        "Julia argument type": (h, lj.replace("(Cstring, Csize_t, UInt64, Ptr{Float32})", "(Cstring, UInt32, UInt64, Ptr{Float32})"), sj, rt, hpp, ct),
        "Julia argument removed": (h, lj.replace("(Ptr{SanceEbm}, Ptr{Float32}, Csize_t, Ptr{Float32}), ebm, x, n, out)", "(Ptr{SanceEbm}, Ptr{Float32}, Csize_t), ebm, x, n)"), sj, rt, hpp, ct),
        "Julia double argument type": (h, lj.replace("Ptr{SanceAis}, Ptr{Float64}, Ptr{Float64}", "Ptr{SanceAis}, Ptr{Float32}, Ptr{Float64}"), sj, rt, hpp, ct),
        "Julia return type": (h, lj.replace("sance_cuda_device_count), Int32", "sance_cuda_device_count), Int64"), sj, rt, hpp, ct),
        "Julia enum value": (h, lj.replace("SANCE_STATUS_PANIC = 8", "SANCE_STATUS_PANIC = 9"), sj, rt, hpp, ct),
        "Julia version constant": (h, lj.replace("const SANCE_VERSION_MINOR = UInt32(5)", "const SANCE_VERSION_MINOR = UInt32(6)"), sj, rt, hpp, ct),
        "Julia warning constant": (h, lj.replace("const SANCE_WARNING_OUT_OF_REACH = UInt32(4)", "const SANCE_WARNING_OUT_OF_REACH = UInt32(8)"), sj, rt, hpp, ct),
        "Julia last field removed": (h, lj.replace("    warnings::UInt32\n", ""), sj, rt, hpp, ct),
        "Julia enum field removed": (h, lj.replace("    noise::SanceNoise\n", ""), sj, rt, hpp, ct),
        "Julia enum value swapped": (h, lj.replace("SANCE_NOISE_GAUSSIAN = 1", "SANCE_NOISE_GAUSSIAN = 0"), sj, rt, hpp, ct),
        "Julia enum field as an integer": (h, lj.replace("    scaling::SanceScaling\n", "    scaling::UInt32\n"), sj, rt, hpp, ct),
        "Julia ccall missing": (h, lj.replace("ccall(sym(:sance_toy_dataset_dim)", "ccall(sym(:sance_toy_dataset_dims)"), sj, rt, hpp, ct),
        "Julia function pointer missing": (h, lj.replace("    sance_ebm_save::Ptr{Cvoid}\n", ""), sj, rt, hpp, ct),
        "Julia report fields swapped": (h, lj.replace("    log_z::Float64\n    log_z_std_error::Float64", "    log_z_std_error::Float64\n    log_z::Float64"), sj, rt, hpp, ct),
        "Julia sampler field as the enum": (h, lj.replace("struct SanceSampling\n    sampler::UInt32", "struct SanceSampling\n    sampler::SanceSampler"), sj, rt, hpp, ct),
        "Julia draw argument removed": (h, lj.replace("Ptr{Float32}, Ptr{SanceDrawReport}),\n          ebm, n, params, out, report)", "Ptr{Float32}),\n          ebm, n, params, out)"), sj, rt, hpp, ct),
        "Julia sampler enum value": (h, lj.replace("SANCE_SAMPLER_ANNEALED = 3", "SANCE_SAMPLER_ANNEALED = 4"), sj, rt, hpp, ct),
        "C macro changed": (h.replace("#define SANCE_ABI_VERSION 6", "#define SANCE_ABI_VERSION 7"), lj, sj, rt, hpp, ct),
        "C field type": (h.replace("  uint32_t hidden_layers;", "  uint64_t hidden_layers;"), lj, sj, rt, hpp, ct),
        "C field appended": (h.replace("  float target_acceptance;\n} SanceLangevin;", "  float target_acceptance;\n  float extra;\n} SanceLangevin;"), lj, sj, rt, hpp, ct),
        "C enum value added": (h.replace("  SANCE_SCALING_NONE = 1,\n", "  SANCE_SCALING_NONE = 1,\n  SANCE_SCALING_LOG = 2,\n"), lj, sj, rt, hpp, ct),
        "C argument added": (h.replace("SanceStatus sance_ebm_refresh_noise(SanceEbm *ebm);", "SanceStatus sance_ebm_refresh_noise(SanceEbm *ebm, float x);"), lj, sj, rt, hpp, ct),
        "C function added": (h.replace("const char *sance_version(void);", "const char *sance_version(void);\nSanceStatus sance_ebm_new_thing(SanceEbm *ebm);"), lj, sj, rt, hpp, ct),
        "C++ test missing": (h, lj, sj, rt, hpp, ct.replace(".fit_noise(", ".fit_noise_(")),
        "C++ wrapper missing": (h, lj, sj, rt, hpp.replace("sance_ebm_progress(", "sance_ebm_progres("), ct),
        "C++ draw test missing": (h, lj, sj, rt, hpp, ct.replace(".draw(", ".draw_(")),
        "Julia draw wrapper missing": (h, lj, sj.replace("LibSance.sance_ebm_draw(", "LibSance.sance_ebm_drew("), rt, hpp, ct),
        "Julia test missing": (h, lj, sj, rt.replace("refresh_noise!(", "refresh_noise_(") , hpp, ct),
    }
    n, problems = check(h, lj, sj, rt, hpp, ct)
    results = [("unchanged sources pass", not problems, "; ".join(problems))]
    eh, elj, ehpp = header_text(EVAL_HEADER), LIBSANCE_EVAL.read_text(), EVAL_HPP.read_text()
    _, eproblems = check_eval()
    results.append(("unchanged libsance_eval sources pass", not eproblems, "; ".join(eproblems)))
    eval_mutations = {
        "libsance_eval: Julia argument type": (eh, elj.replace("Ptr{Float32}, Csize_t, Ptr{Float32}", "Ptr{Float32}, UInt32, Ptr{Float32}"), ehpp),
        "libsance_eval: Julia return type": (eh, elj.replace("sance_eval_dim), UInt32", "sance_eval_dim), Int32"), ehpp),
        "libsance_eval: C function added": (eh.replace("void sance_eval_free(SanceEval *model);", "void sance_eval_free(SanceEval *model);\nuint32_t sance_eval_width(const SanceEval *model);"), elj, ehpp),
        "libsance_eval: C++ wrapper missing": (eh, elj, ehpp.replace("sance_eval_dim(", "sance_eval_dims(")),
        "libsance_eval: shared status value": (eh.replace("SANCE_STATUS_CORRUPT = 6", "SANCE_STATUS_CORRUPT = 16"), elj, ehpp),
    }
    for what, (a, b, c) in eval_mutations.items():
        changed = (a, b, c) != (eh, elj, ehpp)
        _, found = check_eval(a, b, c)
        results.append((f"{what} is caught", changed and bool(found), "mutation did not apply" if not changed else "not caught"))
    for what, srcs in mutations.items():
        changed = srcs != (h, lj, sj, rt, hpp, ct)
        _, found = check(*srcs)
        results.append((f"{what} is caught", changed and bool(found), "mutation did not apply" if not changed else "not caught"))
    return results


def main():
    if "--self-test" in sys.argv:
        results = self_test()
        for what, ok, why in results:
            print(("ok   " if ok else "FAIL ") + what + ("" if ok else f": {why}"))
        failed = sum(1 for _, ok, _ in results if not ok)
        print(f"{len(results) - failed} passed, {failed} failed")
        return 1 if failed else 0
    n, problems = check(*sources())
    n_eval, eval_problems = check_eval()
    n += n_eval
    problems += eval_problems
    for p in problems:
        print("FAIL " + p)
    print(f"{n - len(problems)} passed, {len(problems)} failed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

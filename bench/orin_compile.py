"""Compile every kernel launch of the fused frame for explicit GPU targets, without a GPU (issue 22).

The launches are the frame's own: a full-size model (the released 0.6B / 1.7B shapes, random weights) is
built on the "meta" device and one fused frame is run under fused_triton.recorded_launches, which records
each launch's kernel, arguments, constexprs and num_warps instead of running it. Each distinct launch is
then bound and specialised the way Triton's JIT launcher does it (integer 1 -> constexpr, divisibility by
16 of integers and pointers) and compiled by triton.compile for GPUTarget("cuda", cc, 32): Triton's own
passes, then its bundled ptxas, whose `-v` log gives registers and spills. Nothing is cached across runs
(Triton's always_compile knob, and a fresh TRITON_CACHE_DIR per run), so no failure can hide behind a cache.

    python -m bench.orin_compile [--targets 87 80 86 89 90] [--sizes 0b6 1b7] [--json out.json]

prints one row per distinct kernel compilation; test_orin_compile.py asserts the limits (LIMITS).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass

import torch

from qwen3_tts_ros.engine.frame.options import DEFAULT_MAX_SEQ_LEN, FrameOptions

SIZES = ("0b6", "1b7")
TARGETS = (87, 80, 86, 89, 90)  # Jetson Orin first; A100, RTX 30xx / A10, RTX 40xx / L4, H100
# The talker's cache length sets its attention's constexprs and split count (fused_triton.FusedStack): the
# default, a short cache (8 splits of 32) and a long one (16 splits of 512).
MAX_SEQ_LENS = (DEFAULT_MAX_SEQ_LEN, 256, 8192)


@dataclass(frozen=True)
class Limits:
    """Per-block limits of one compute capability: CUDA C++ Programming Guide, "Compute Capabilities",
    table "Technical Specifications per Compute Capability" (CUDA 12.x): 255 registers per thread and 64 K
    32-bit registers per block for 8.x and 9.0; maximum shared memory per block (opt-in) 163 KB for 8.0
    and 8.7, 99 KB for 8.6 and 8.9, 227 KB for 9.0. Registers are allocated per warp in units of 256
    (CUDA occupancy calculator, "register allocation unit size" for 8.x / 9.0), so a block of T threads at
    R registers takes ceil(R * 32 / 256) * 256 * T / 32 of the 64 K."""

    registers_per_thread: int = 255
    registers_per_block: int = 65536
    shared_per_block: int = 163 * 1024


LIMITS = {
    80: Limits(),
    86: Limits(shared_per_block=99 * 1024),
    87: Limits(),
    89: Limits(shared_per_block=99 * 1024),
    90: Limits(shared_per_block=227 * 1024),
}


@dataclass(frozen=True)
class Compiled:
    """One distinct compilation: where the frame launches it, and what ptxas / Triton report."""

    target: int
    kernel: str
    where: str  # model size(s) and dtype of the frames that launch it
    constexprs: str
    num_warps: int
    registers: int
    spill_stores: int  # bytes
    spill_loads: int  # bytes
    stack_frame: int  # bytes of local memory per thread
    shared: int  # bytes of shared memory per block (Triton's allocation)

    @property
    def threads(self) -> int:
        return 32 * self.num_warps

    @property
    def registers_per_block(self) -> int:
        per_warp = -(-self.registers * 32 // 256) * 256
        return per_warp * self.num_warps

    def problems(self) -> list[str]:
        """Why this kernel cannot run as launched on its target ([] when it fits, and spills nothing)."""
        limits = LIMITS[self.target]
        found = []
        if self.registers > limits.registers_per_thread:
            found.append(f"{self.registers} registers per thread > {limits.registers_per_thread}")
        if self.registers_per_block > limits.registers_per_block:
            found.append(f"{self.registers_per_block} registers per block > {limits.registers_per_block}")
        if self.shared > limits.shared_per_block:
            found.append(f"{self.shared} bytes of shared memory > {limits.shared_per_block}")
        if self.spill_stores or self.spill_loads:
            found.append(f"spills {self.spill_stores} bytes stored / {self.spill_loads} bytes loaded")
        return found


def frame_launches(size: str, dtype: torch.dtype, max_seq_len: int = DEFAULT_MAX_SEQ_LEN) -> list:
    """The launches of one fused frame of the full-size `size` model in `dtype`, recorded on "meta"."""
    from bench.gpu_parity import build_model
    from qwen3_tts_ros.engine.frame.fused_triton import FusedTritonFrame, recorded_launches
    from qwen3_tts_ros.engine.frame.state import FrameState

    model = build_model(size, tiny=False, device="meta").to(dtype)
    frame = FusedTritonFrame(FrameState(model, FrameOptions(max_seq_len=max_seq_len)))
    with torch.no_grad(), recorded_launches() as launches:
        frame.run(0)
    return launches


@dataclass(frozen=True)
class Job:
    """One compilation, as plain data a worker process can take: the kernel by name, the rest as Triton's
    launcher would pass it to triton.compile."""

    kernel: str
    target: int
    signature: dict
    constexprs: dict
    attrs: dict
    options: dict

    def key(self) -> str:
        return repr((self.kernel, self.target, self.signature, self.constexprs, self.attrs, self.options))


def bind(launch, target_cc: int) -> Job:
    """What Triton's JIT launcher (JITFunction.run) compiles for `launch` on `target_cc`: its binder's
    specialisation of the arguments, then _pack_args (Triton's own code, not a copy of it)."""
    from triton import knobs
    from triton.backends.compiler import GPUTarget
    from triton.compiler import make_backend
    from triton.runtime.jit import create_function_from_signature

    kernel = launch.kernel
    backend = make_backend(GPUTarget("cuda", target_cc, 32))
    binder = create_function_from_signature(kernel.signature, kernel.params, backend)
    kwargs = dict(launch.options)
    kwargs["debug"] = kwargs.get("debug", kernel.debug) or knobs.runtime.debug  # as JITFunction.run
    kwargs["instrumentation_mode"] = knobs.compilation.instrumentation_mode
    bound, specialization, options = binder(*launch.args, **kwargs)
    options, signature, constexprs, attrs = kernel._pack_args(backend, kwargs, bound, specialization, options)
    return Job(kernel.__name__, target_cc, signature, constexprs, attrs, dict(options.__dict__))


_PTXAS_PROPERTIES = re.compile(
    r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads.*?Used (\d+) registers", re.S
)


def compile_job(job: Job) -> dict:
    """triton.compile `job`; its ptxas -v log's registers and spills, Triton's shared memory."""
    import triton
    from triton import knobs
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from qwen3_tts_ros.engine.frame import triton_kernels

    fn = getattr(triton_kernels, job.kernel)
    log = io.StringIO()
    with knobs.nvidia.scope(), knobs.compilation.scope():
        knobs.nvidia.dump_ptxas_log = True  # Triton prints the log of the ptxas run that made this cubin
        knobs.compilation.always_compile = True
        with contextlib.redirect_stdout(log):
            compiled = triton.compile(
                ASTSource(fn, job.signature, job.constexprs, job.attrs),
                target=GPUTarget("cuda", job.target, 32), options=job.options,
            )  # fmt: skip
    found = _PTXAS_PROPERTIES.search(log.getvalue())
    if found is None:
        raise RuntimeError(f"no ptxas -v log for {job.kernel} on sm_{job.target}:\n{log.getvalue()}")
    stack, stores, loads, registers = (int(v) for v in found.groups())
    return dict(registers=registers, spill_stores=stores, spill_loads=loads, stack_frame=stack,
                shared=int(compiled.metadata.shared))  # fmt: skip


def _describe(job: Job, kernel) -> str:
    """name=value of the constexprs the launch sets, and the pointers Triton may not assume 16-byte aligned
    (which is what tells compilations of the same constexprs apart)."""
    names = [p.name for p in kernel.params]
    parts = [
        f"{names[path[0]]}={getattr(value, 'name', value)}"
        for path, value in sorted(job.constexprs.items())
        if kernel.params[path[0]].is_constexpr
    ]
    unaligned = [
        name for i, name in enumerate(names)
        if job.signature[name].startswith("*") and not job.attrs.get((i,))
    ]  # fmt: skip
    if unaligned:
        parts.append(f"(unaligned: {', '.join(unaligned)})")
    return " ".join(parts)


def check(
    sizes=SIZES,
    targets=TARGETS,
    dtypes=(torch.bfloat16,),
    max_seq_lens=MAX_SEQ_LENS,
    workers: int | None = None,
) -> list[Compiled]:
    """Every distinct compilation of the fused frame's launches for `sizes` x `dtypes` x `max_seq_lens` on
    `targets`."""
    jobs: dict[str, Job] = {}
    where: dict[str, list[str]] = {}
    described: dict[str, str] = {}
    for size in sizes:
        for dtype in dtypes:
            launches = [launch for length in max_seq_lens for launch in frame_launches(size, dtype, length)]
            for launch in launches:
                for cc in targets:
                    job = bind(launch, cc)
                    key = job.key()
                    jobs.setdefault(key, job)
                    described.setdefault(key, _describe(job, launch.kernel))
                    label = f"{size} {str(dtype).removeprefix('torch.')}"
                    if label not in where.setdefault(key, []):
                        where[key].append(label)
    keys = list(jobs)
    before = os.environ.get("TRITON_CACHE_DIR")
    with tempfile.TemporaryDirectory(prefix="orin-compile-") as cache:
        os.environ["TRITON_CACHE_DIR"] = cache  # read by the workers; nothing survives this run
        try:
            with ProcessPoolExecutor(max_workers=workers or min(4, os.cpu_count() or 1)) as pool:
                results = list(pool.map(compile_job, [jobs[k] for k in keys]))
        finally:
            if before is None:
                del os.environ["TRITON_CACHE_DIR"]
            else:
                os.environ["TRITON_CACHE_DIR"] = before
    return [
        Compiled(
            target=jobs[k].target,
            kernel=jobs[k].kernel,
            where=", ".join(where[k]),
            constexprs=described[k],
            num_warps=jobs[k].options["num_warps"],
            **r,
        )  # fmt: skip
        for k, r in zip(keys, results)
    ]


def table(rows: list[Compiled]) -> str:
    """A markdown table: one line per compilation, sorted by target, kernel and registers."""
    lines = [
        "| target | kernel | frames | constexprs | warps | registers | regs/block | shared B | spills B "
        "| stack B |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r.target != 87, r.target, r.kernel, -r.registers)):
        lines.append(
            f"| sm_{r.target} | {r.kernel} | {r.where} | {r.constexprs} | {r.num_warps} | {r.registers} | "
            f"{r.registers_per_block} | {r.shared} | {r.spill_stores}/{r.spill_loads} | {r.stack_frame} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--targets", type=int, nargs="+", default=list(TARGETS))
    parser.add_argument("--sizes", nargs="+", default=list(SIZES))
    parser.add_argument("--max-seq-lens", type=int, nargs="+", default=list(MAX_SEQ_LENS))
    parser.add_argument("--fp16", action="store_true", help="also float16 frames")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    dtypes = (torch.bfloat16, torch.float16) if args.fp16 else (torch.bfloat16,)
    rows = check(args.sizes, args.targets, dtypes, args.max_seq_lens)
    print(table(rows))
    bad = [(r, r.problems()) for r in rows if r.problems()]
    for r, problems in bad:
        print(f"DOES NOT FIT: sm_{r.target} {r.kernel} ({r.constexprs}): {'; '.join(problems)}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([asdict(r) for r in rows], f, indent=1)
    raise SystemExit(1 if bad else 0)


if __name__ == "__main__":
    main()

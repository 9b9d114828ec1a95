"""scripts/bench_vision.py: the phases' results as the flat summary (JSON) and as text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.vision_common import CPU_BUDGET_PCT, DETECT_FPS, RATE_SHARE, TARGETS, machine

PER_N_KEYS = ("n", "pass", "why_not", "detect_fps_min", "detect_fps_mean", "cpu_pct", "inferences_per_s",
              "rss_mb", "peak_rss_mb", "session_run_ms_mean", "stage_ms_p95_max", "infer_ms_p95_max",
              "frame_age_ms_p95_max", "result_age_ms_p95_max", "pool_queue_max", "inferred_share",
              "host_busy_pct", "host_steal_pct")


def verdict(value: float | None, target: float, higher_is_better: bool = True) -> str:
    """'met' / 'MISSED' / 'n/a' against a target."""
    if value is None:
        return "n/a"
    ok = value >= target if higher_is_better else value <= target
    return "met" if ok else "MISSED"


def summarise(results: dict[str, Any]) -> dict[str, Any]:
    """The flat figures asked for, plus the detail of every phase."""
    a, c, d = results.get("a", {}), results.get("c", {}), results.get("d", {})
    per_n = [{k: row[k] for k in PER_N_KEYS} for row in results.get("b", [])]
    best, capped = results.get("max_cameras"), results.get("max_cameras_capped")
    return {
        "pipeline_vs_raw": a.get("pipeline_vs_raw"),
        "raw_person_fps": a.get("raw_person_fps"),
        "raw_face_fps": a.get("raw_face_fps"),
        "pipeline_fps": a.get("pipeline_fps"),
        "pipeline_unpaced_fps": a.get("pipeline_unpaced_fps"),
        "max_cameras": best,
        "max_cameras_capped": capped,
        "per_n": per_n,
        "static_calls_per_min_gate_on": c.get("static_calls_per_min_gate_on"),
        "static_calls_per_min_gate_off": c.get("static_calls_per_min_gate_off"),
        "motion_gate_ratio": c.get("motion_gate_ratio"),
        "peak_rss_mb_4_cameras": d.get("peak_rss_mb_4_cameras"),
        "machine": machine(),
        "targets": {
            "pipeline_vs_raw": verdict(a.get("pipeline_vs_raw"), TARGETS["pipeline_vs_raw"]),
            "max_cameras": ("n/a (the sweep stopped at --max-cameras before a run failed)"
                            if capped and (best or 0) < TARGETS["max_cameras"]
                            else verdict(best, TARGETS["max_cameras"])),
            "motion_gate_ratio": verdict(c.get("motion_gate_ratio"), TARGETS["motion_gate_ratio"]),
            "peak_rss_mb_4_cameras": verdict(d.get("peak_rss_mb_4_cameras"),
                                             TARGETS["peak_rss_mb_4_cameras"], higher_is_better=False),
        },
        "detail": {"a": a, "c": c, "d": d, "b": results.get("b", [])},
        "total_wall_s": results.get("total_wall_s"),
    }


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _span(values: Sequence[float], digits: int = 2) -> str:
    """'low..high' of a few figures."""
    if not values:
        return "-"
    return f"{min(values):.{digits}f}..{max(values):.{digits}f}"


def _cycle_lines(a: dict[str, Any]) -> list[str]:
    """One pipeline inference cycle split up, and what each part costs the ratio."""
    cy, raw_ms = a["pipeline"]["cycle"], a["raw_person_ms"]
    run, cycle, idle = cy["session_run_ms"], cy["cycle_ms"], cy["model_idle_ms"]
    if None in (run, cycle, idle):
        return ["   (too few pipeline inferences to split a cycle)"]
    lost = cycle - raw_ms
    return [
        f"   one pipeline inference cycle {cycle:.1f} ms = session.run {run:.1f} + model idle between "
        f"runs {idle:.1f} (p95 {_num(cy['model_idle_ms_p95'])}); _infer incl. waiting for its turn "
        f"{_num(cy['infer_ms'])} ms",
        f"   _stage {_num(cy['stage_ms'])} ms, overlapped with the model except {cy['serial_stages']} of "
        f"{cy['inferences']} frames; model busy {_num(cy['model_busy_pct'])}% of the windows; "
        f"other person-model runs (snapshot blurring) {cy['other_model_calls']} "
        f"({cy['other_model_ms']:.0f} ms), snapshots {a['pipeline']['snapshots']}",
        f"   so pipeline_vs_raw ~= raw {raw_ms:.1f} ms / cycle {cycle:.1f} ms = {raw_ms / cycle:.3f}; the "
        f"{lost:.1f} ms lost per inference: model slower than raw {run - raw_ms:.1f}, model idle {idle:.1f}",
    ]


def _phase_a_lines(a: dict[str, Any], t: dict[str, Any]) -> list[str]:
    st, setup, pipe, unp = a["stages"]["mean_ms"], a["setup"], a["pipeline"], a["pipeline_unpaced"]
    return [
        "",
        f"a. raw ONNX vs pipeline (threads={setup['threads']} per call, one call at a time, "
        f"{setup['workers']} pool workers; {setup['rounds']} pipeline segments alternating with "
        f"{setup['raw_segment_s']:g} s raw segments)",
        f"   raw person ({setup['person_model']}): {a['raw_person_fps']:.2f} inf/s "
        f"({a['raw_person_ms']:.1f} ms; "
        f"segments {_span(pipe['raw_fps_per_segment'])}; process CPU {_num(pipe['raw_cpu_pct'])}%)",
        f"   raw face ({setup['face_model']}): {a['raw_face_fps']:.2f} inf/s "
        f"({a['raw_face']['ms_per_call']:.1f} ms)",
        f"   pipeline, 1 camera, input {setup['input_fps']:g} fps "
        f"(measured {_num(pipe['input_fps_measured'])}), "
        f"detect_fps {setup['detect_fps']:g}, gate off, tamper on: {a['pipeline_fps']:.2f} inf/s "
        f"({a['pipeline_ms_per_inference']:.1f} ms each, process CPU {_num(pipe['pipeline_cpu_pct'])}%; "
        f"segments {_span(pipe['pipeline_fps_per_segment'])})",
        f"   pipeline_vs_raw = {a['pipeline_vs_raw']:.3f}  (target >= {TARGETS['pipeline_vs_raw']}: "
        f"{t['pipeline_vs_raw']}; per segment {_span(pipe['ratio_per_round'], 3)})",
        *_cycle_lines(a),
        f"   same, file read unpaced (decoder flat out, {setup['unpaced_rounds']} segments): "
        f"{a['pipeline_unpaced_fps']:.2f} inf/s (x{a['pipeline_unpaced_vs_raw']:.3f} raw, process CPU "
        f"{_num(unp['pipeline_cpu_pct'])}%, session.run {_num(unp['cycle']['session_run_ms'])} ms, "
        f"cycle {_num(unp['cycle']['cycle_ms'])} ms, input {_num(unp['input_fps_measured'])} fps)",
        f"   serial steps per frame, ms ({a['stages']['frames']} frames, one pass): "
        + ", ".join(f"{k} {v:.2f}" for k, v in st.items()),
        f"   one camera's critical path per inference is session.run alone ({a['stages']['critical_ms']:.1f}"
        f" ms): preparing the next frame and decoding this one overlap it (all in turn it would be "
        f"{a['stages']['serial_ms']:.1f} ms; tamper runs at most once a second)",
    ]


def _phase_b_lines(rows: list[dict[str, Any]], summary: dict[str, Any]) -> list[str]:
    lines = ["",
             f"b. N cameras, 10 fps input, {DETECT_FPS:g} fps detection each, gate + tamper on "
             f"(pass: every camera >= {RATE_SHARE * DETECT_FPS:.2f} fps, CPU <= {CPU_BUDGET_PCT:g}%)",
             "    N  result  detect fps min/mean  CPU %  host %  inf/s  run ms  RSS MB  stage p95  "
             "infer p95  frame age p95  result age p95  queue"]
    for r in rows:
        lines.append(
            f"   {r['n']:>2}  {'pass' if r['pass'] else 'FAIL':<6}  {r['detect_fps_min']:>6.2f} /"
            f" {r['detect_fps_mean']:<6.2f}     {r['cpu_pct']:>5}  {r['host_busy_pct'] or 0:>6}  "
            f"{r['inferences_per_s']:>5.1f}  {_num(r['session_run_ms_mean']):>6}  {r['rss_mb']:>6.0f}  "
            f"{r['stage_ms_p95_max']:>9.1f}  {r['infer_ms_p95_max']:>9.1f}  "
            f"{r['frame_age_ms_p95_max']:>13.1f}  "
            f"{r['result_age_ms_p95_max']:>14.1f}  {r['pool_queue_max']:>5}"
            + (f"   ({r['why_not']})" if r["why_not"] else ""))
    capped = " (every N tried passed: raise --max-cameras)" if summary["max_cameras_capped"] else ""
    lines.append(f"   max_cameras = {summary['max_cameras']}{capped}  "
                 f"(target >= {TARGETS['max_cameras']}: {summary['targets']['max_cameras']})")
    return lines


def report(summary: dict[str, Any]) -> str:
    """The figures as text."""
    m, t, detail = summary["machine"], summary["targets"], summary["detail"]
    lines = [f"vision benchmark on {m['cores']} cores ({m['cpu_model']}), onnxruntime {m['onnxruntime']}, "
             f"OpenCV {m['opencv']}, Python {m['python']}"]
    if detail["a"]:
        lines += _phase_a_lines(detail["a"], t)
    if detail["b"]:
        lines += _phase_b_lines(detail["b"], summary)
    c = detail["c"]
    if c:
        ratio = c["motion_gate_ratio"]
        lines += ["",
                  f"c. static scene (clip frame {c['video']['source_frame']} + noise sigma "
                  f"{c['video']['noise_sigma']:g}, mp4v), 10 fps input, 2 fps detection, "
                  f"{c['run']['window_s']:.0f} s side by side",
                  f"   person-model calls/min: gate on {c['static_calls_per_min_gate_on']:.1f}, "
                  f"gate off {c['static_calls_per_min_gate_off']:.1f} -> "
                  + (f"{ratio:.1f}x fewer" if ratio is not None
                     else "ratio undefined (no call with the gate on)")
                  + f"  (target >= {TARGETS['motion_gate_ratio']:g}x: {t['motion_gate_ratio']}; "
                  f"recheck every {c['recheck_s']:g} s)"]
    d = detail["d"]
    if d:
        lines += ["",
                  f"d. peak RSS, fresh process, 4 cameras, person + face models, {d['seconds']:g} s: "
                  f"{d['peak_rss_mb_4_cameras']:.0f} MB  (target <= {TARGETS['peak_rss_mb_4_cameras']:g}: "
                  f"{t['peak_rss_mb_4_cameras']})",
                  f"   RSS after imports {d['rss_after_imports_mb']:.0f} MB, after loading models "
                  f"{d['rss_after_models_mb']:.0f} MB, at the end {d['rss_end_mb']:.0f} MB; "
                  f"{d['snapshots_taken']} blurred snapshots taken"]
    if summary.get("total_wall_s") is not None:
        lines += ["", f"total {summary['total_wall_s']:.0f} s"]
    return "\n".join(lines)

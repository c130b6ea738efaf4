"""The three training loops a run can take: offline, online, and online with collection in a thread.

Each takes the run (its agent, replay, counters and logging) and drives it to the end of
its schedule; the run owns every resource, the loop only the order of work.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from rldata.collectors import SyncDataCollector
from rldata.data import SampleToInsertRatio
from rldata.envs import GymEnv

if TYPE_CHECKING:
    from rldata.trainers.run import Run


def due(count: int, every: int | None, last: int) -> bool:
    """Whether ``count`` crossed a multiple of ``every`` since ``last``."""
    return every is not None and count // every > last // every


def offline(run: Run) -> None:
    """Store -> sampler -> loss, ``steps`` updates."""
    cfg = run.cfg
    total = int(cfg.steps)  # type: ignore[arg-type]
    ckpt_every = cfg.checkpoint_every or cfg.eval_every
    t0, u0 = time.perf_counter(), run.updates
    while run.updates < total:
        before = run.updates
        run.update()
        if due(run.updates, cfg.log_every, before):
            run.log("train")
        if due(run.updates, cfg.eval_every, before):
            run.evaluate()
        if due(run.updates, ckpt_every, before):
            run.checkpoint()
        if run.updates % 50 == 0 or run.updates == total:
            rate = (run.updates - u0) / max(time.perf_counter() - t0, 1e-9)
            run.report(run.updates, total, rate)


def _collector(run: Run, policy: Any) -> tuple[SyncDataCollector, GymEnv]:
    cfg = run.cfg
    remaining = int(cfg.frames) - run.env_steps  # type: ignore[arg-type]
    env = GymEnv(cfg.env)  # type: ignore[arg-type]
    first_id = run.store.next_traj_id() if run.store is not None else 0
    collector = SyncDataCollector(
        env,
        policy,
        frames_per_batch=int(cfg.frames_per_batch),  # type: ignore[arg-type]
        total_frames=max(remaining, 1),
        init_random_frames=max(0, int(cfg.init_random_frames) - run.env_steps),  # type: ignore[arg-type]
        policy_device="cpu" if run.device.type == "cuda" else None,
        traj_id_start=first_id,
    )
    collector.set_seed(cfg.seed + run.env_steps)
    return collector, env


def _can_learn(run: Run) -> bool:
    cfg = run.cfg
    started = run.env_steps >= int(cfg.learning_starts)  # type: ignore[arg-type]
    return started and len(run.replay) >= int(cfg.batch_size)  # type: ignore[arg-type]


def online(run: Run) -> None:
    """Collector -> store -> sampler -> loss, ``utd`` updates per fresh frame."""
    cfg = run.cfg
    total = int(cfg.frames)  # type: ignore[arg-type]
    if run.env_steps >= total:
        return
    collector, env = _collector(run, run.exploring)
    ckpt_every = cfg.checkpoint_every or cfg.eval_every
    credit = 0.0
    t0, f0 = time.perf_counter(), run.env_steps
    try:
        for rows in collector:
            n = rows.numel()
            before = run.env_steps
            run.writable.extend(rows)
            run.env_steps += n
            if run.agent.noise is not None:
                run.agent.noise.step(n)
            if _can_learn(run):
                # frames past learning_starts earn utd updates each
                fresh = run.env_steps - max(before, int(cfg.learning_starts))  # type: ignore[arg-type]
                credit += float(cfg.utd) * fresh  # type: ignore[arg-type]
                u_before = run.updates
                while credit >= 1.0:
                    credit -= 1.0
                    if cfg.steps is not None and run.updates >= cfg.steps:
                        break
                    run.update()
                if due(run.updates, cfg.log_every, u_before):
                    run.log("train")
            collector.update_policy_weights_()
            if due(run.env_steps, cfg.eval_every, before):
                run.evaluate()
            if due(run.env_steps, ckpt_every, before) and run.env_steps < total:
                run.checkpoint()
            if due(run.env_steps, 50, before) or run.env_steps >= total:
                rate = (run.env_steps - f0) / max(time.perf_counter() - t0, 1e-9)
                run.report(run.env_steps, total, rate)
            if run.env_steps >= total:
                break
    finally:
        collector.shutdown()
        env.close()


def online_async(run: Run) -> None:
    """Collect in a thread; a sample-to-insert rate limiter holds the update-to-data ratio."""
    cfg = run.cfg
    total = int(cfg.frames)  # type: ignore[arg-type]
    if run.env_steps >= total:
        return
    utd = float(cfg.utd)  # type: ignore[arg-type]
    fpb = int(cfg.frames_per_batch)  # type: ignore[arg-type]
    limiter = SampleToInsertRatio(
        samples_per_insert=utd,
        min_size_to_sample=max(int(cfg.learning_starts), int(cfg.batch_size), 1),  # type: ignore[arg-type]
        error_buffer=max(utd * fpb, 1.0, utd) * 2,
    )
    collector, env = _collector(run, run.exploring)
    lock = threading.Lock()
    failure: list[BaseException] = []

    def collect() -> None:
        try:
            for rows in collector:
                n = rows.numel()
                if not limiter.await_can_insert(n):
                    return
                run.writable.extend(rows)
                with lock:
                    run.env_steps += n
                if run.agent.noise is not None:
                    run.agent.noise.step(n)
                limiter.inserted(n)
                if run.env_steps >= total:
                    return
        except BaseException as err:  # noqa: BLE001 - re-raised by the learner
            failure.append(err)
        finally:
            limiter.close()

    thread = threading.Thread(target=collect, name="rldata-collect", daemon=True)
    ckpt_every = cfg.checkpoint_every or cfg.eval_every
    t0, f0 = time.perf_counter(), run.env_steps
    last_steps = run.env_steps
    thread.start()
    try:
        while True:
            if not limiter.await_can_sample(1):
                break
            run.update()
            limiter.sampled(1)
            run.blocked = {
                "insert_blocked_s": round(limiter.insert_blocked_s, 3),
                "sample_blocked_s": round(limiter.sample_blocked_s, 3),
            }
            if run.updates % cfg.log_every == 0:
                run.log("train")
            with lock:
                steps = run.env_steps
            if due(steps, cfg.eval_every, last_steps):
                run.evaluate()
            if due(steps, ckpt_every, last_steps):
                run.checkpoint()
            if due(steps, 50, last_steps):
                rate = (steps - f0) / max(time.perf_counter() - t0, 1e-9)
                run.report(steps, total, rate)
            last_steps = steps
    finally:
        limiter.close()
        thread.join()
        collector.shutdown()
        env.close()
    if failure:
        raise failure[0]

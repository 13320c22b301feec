"""The Python package's append_log, re-implemented from the wire-format spec, as the baseline
that task-state's throughput is compared with.

The DMS package itself is not available here. This follows what the spec says it does: every
mutation reads the record, validates it into a pydantic model, changes it, and writes it back
with the metadata hash and the five index sets and their TTLs (one pipeline round trip, which
is generous to it). Each worker appends to a task of its own, so no update is lost to another
worker's read-modify-write.

Prints one JSON line: {"op", "ops_per_sec", "p50_us", "p99_us", "concurrency"}.
"""

import argparse
import asyncio
import json
import time
from datetime import datetime
from typing import Any, Dict, List, Optional
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis
from pydantic import BaseModel, Field

ZONE = ZoneInfo("Asia/Seoul")
TTL = 7776000


class TaskResult(BaseModel):
    pod_status: Optional[str] = None
    launcher_output: Optional[str] = None


class TaskRecord(BaseModel):
    task_id: str
    service: str
    user_id: str
    status: str
    parameters: Dict[str, Any] = Field(default_factory=dict)
    jobs: List[str] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=lambda: datetime.now(ZONE))
    updated_at: datetime = Field(default_factory=lambda: datetime.now(ZONE))
    logs: List[str] = Field(default_factory=list)
    result: TaskResult = Field(default_factory=TaskResult)
    priority: str = "low"


def format_log_entry(message: str) -> str:
    return f"{datetime.now(ZONE).isoformat()},{message}"


async def write(r, record: TaskRecord) -> None:
    s, u, tid = record.service, record.user_id, record.task_id
    indexes = [
        ("index:tasks", tid),
        (f"index:service:{s}", tid),
        (f"index:service:{s}:users", u),
        (f"index:service:{s}:user:{u}", tid),
        (f"index:user:{u}", tid),
    ]
    pipe = r.pipeline(transaction=False)
    pipe.set(f"task:{tid}", record.model_dump_json(), ex=TTL)
    pipe.hset(f"task:{tid}:metadata", mapping={"service": s, "user_id": u})
    pipe.expire(f"task:{tid}:metadata", TTL + 60)
    for key, member in indexes:
        pipe.sadd(key, member)
        pipe.expire(key, TTL)
    await pipe.execute()


async def append_log(r, task_id: str, message: str) -> Optional[TaskRecord]:
    raw = await r.get(f"task:{task_id}")
    if raw is None:
        return None
    record = TaskRecord.model_validate_json(raw)
    record.logs.append(format_log_entry(message))
    record.updated_at = datetime.now(ZONE)
    await write(r, record)
    return record


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--ops", type=int, default=5000)
    parser.add_argument("--logs", type=int, default=5, help="log entries each task starts with")
    args = parser.parse_args()
    r = aioredis.from_url(args.url, max_connections=args.concurrency)
    workers = max(1, args.concurrency)
    for w in range(workers):
        record = TaskRecord(
            task_id=f"py-{w}", service="bench", user_id=f"u{w % 4}", status="running",
            parameters={"scene": "castle.blend", "frames": 240, "ratio": 0.30000000000000004},
            logs=[format_log_entry(f"setup line {i}") for i in range(args.logs)],
        )
        await write(r, record)
    per_worker = max(1, args.ops // workers)
    latencies: List[float] = []

    async def worker(w: int) -> None:
        for i in range(per_worker):
            start = time.perf_counter()
            await append_log(r, f"py-{w}", f"line {i} of worker {w}")
            latencies.append(time.perf_counter() - start)

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(workers)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1e6
    print(json.dumps({
        "op": "python_append_log",
        "ops_per_sec": len(latencies) / elapsed,
        "p50_us": pick(0.50),
        "p99_us": pick(0.99),
        "concurrency": workers,
    }))
    await r.aclose()


asyncio.run(main())

"""`python app.py --workers N` as an operator runs it: N worker processes listening on one port, a worker that
dies replaced, SIGTERM and Ctrl-C stopping them all cleanly, a worker that cannot start stopping them all, and
the durable jobs run exactly once with two workers claiming them (bot/workers.py)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select

from app import main as app_main
from services.db import create_engine, create_session_factory
from services.jobs import SUCCEEDED
from services.mail import MAIL_JOB
from services.models import Job, MailMessage
from tests.fakes import free_port
from tests.replicas import ROOT, Replica, Replicas, fresh_postgres_database

BOUND_SECONDS = 120.0
POLL_SECONDS = 0.1


def _start_workers(replicas: Replicas, name: str, database_url: str, count: int = 2, **settings: str) -> Replica:
    argv = [sys.executable, str(ROOT / "app.py"), "--workers", str(count)]
    return replicas.start(name, argv, replicas.environment(database_url, **settings))


def _children(pid: int) -> set[int]:
    with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as children:
        return {int(child) for child in children.read().split()}


def _listening_sockets(port: int) -> set[int]:
    """The inodes of the sockets listening on 127.0.0.1:`port` (from /proc/net/tcp, state 0A)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text(encoding="ascii").splitlines()[1:]:
        fields = line.split()
        address, state, inode = fields[1], fields[3], int(fields[9])
        if state == "0A" and int(address.split(":")[1], 16) == port:
            found.add(inode)
    return found


def _listens(pid: int, port: int) -> bool:
    """Whether process `pid` holds one of the sockets listening on `port`."""
    listening = _listening_sockets(port)
    try:
        descriptors = os.listdir(f"/proc/{pid}/fd")
    except FileNotFoundError:  # it has just ended
        return False
    for descriptor in descriptors:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{descriptor}")
        except OSError:
            continue
        if target.startswith("socket:[") and int(target[8:-1]) in listening:
            return True
    return False


async def _until(condition, what: str, replica: Replica, within: float = BOUND_SECONDS):  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + within
    while not (found := condition()):
        assert asyncio.get_running_loop().time() < deadline, (
            f"{what} not within {within:.0f} s:\n{replica.log()[-4000:]}"
        )
        await asyncio.sleep(POLL_SECONDS)
    return found


async def _exit_code(replica: Replica, within: float = BOUND_SECONDS) -> int:
    code = await _until(lambda: replica.process.poll() is not None, "the parent's exit", replica, within)
    assert code is True
    return int(replica.process.returncode)


def _alive(pids: set[int]) -> set[int]:
    return {pid for pid in pids if Path(f"/proc/{pid}").exists()}


def _serving(replica: Replica, count: int) -> set[int] | None:
    """The workers, once there are `count` of them and each listens on the port."""
    try:
        workers = _children(replica.process.pid)
    except FileNotFoundError:
        return None
    alive = _alive(workers)
    return alive if len(alive) == count and all(_listens(pid, replica.port) for pid in alive) else None


async def test_workers_share_the_port_a_dead_one_is_replaced_and_sigterm_stops_them_all(tmp_path: Path) -> None:
    replicas = Replicas(tmp_path)
    try:
        replica = _start_workers(replicas, "workers", f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}")
        async with aiohttp.ClientSession() as session:
            assert (await replica.wait_healthy(session))["database"] == "ok"
            first = await _until(lambda: _serving(replica, 2), "two workers listening on the port", replica)

            killed = min(first)
            os.kill(killed, signal.SIGKILL)
            second = await _until(
                lambda: (found := _serving(replica, 2)) and killed not in found and found, "a new worker", replica
            )
            assert len(second & first) == 1  # the other worker served on
            assert "was killed by signal 9: starting another" in replica.log()
            assert (await replica.wait_healthy(session))["database"] == "ok"

        replica.process.send_signal(signal.SIGTERM)
        assert await _exit_code(replica) == 0
        assert not _alive(second)
        assert "Traceback" not in replica.log(), replica.log()[-4000:]
        assert replica.log().count(") stopped") == 2
    finally:
        replicas.kill_all()


@pytest.mark.postgres
async def test_with_two_workers_each_durable_job_runs_once_and_ctrl_c_stops_them_all(tmp_path: Path) -> None:
    """Thirty queued e-mails, each with its `mail.deliver` job, claimed by two workers' job runners at once: each
    job runs on one attempt and each e-mail is written to the outbox once."""
    replicas = Replicas(tmp_path)
    outbox = tmp_path / "outbox"
    async with fresh_postgres_database() as database_url:
        try:
            replica = _start_workers(replicas, "workers", database_url)
            async with aiohttp.ClientSession() as session:
                await replica.wait_healthy(session)
            await _until(lambda: _serving(replica, 2), "two workers listening on the port", replica)
            engine = create_engine(database_url)
            try:
                sessions = create_session_factory(engine)
                async with sessions() as session:
                    messages = [MailMessage(to_address=f"p{n}@example.com", subject=f"Note {n}") for n in range(30)]
                    session.add_all(messages)
                    await session.flush()
                    session.add_all(
                        Job(kind=MAIL_JOB, idempotency_key=f"test:{m.id}", payload={"message_id": m.id}, max_attempts=1)
                        for m in messages
                    )
                    await session.commit()

                async def finished() -> list[Job] | None:
                    async with sessions() as session:
                        jobs = list(await session.scalars(select(Job).where(Job.kind == MAIL_JOB)))
                    return jobs if all(job.finished_at is not None for job in jobs) else None

                deadline = asyncio.get_running_loop().time() + BOUND_SECONDS
                while (jobs := await finished()) is None:
                    assert asyncio.get_running_loop().time() < deadline, replica.log()[-4000:]
                    await asyncio.sleep(POLL_SECONDS)
            finally:
                await engine.dispose()
            assert [(job.status, job.attempts) for job in jobs] == [(SUCCEEDED, 1)] * 30
            written = sorted(path.read_text(encoding="utf-8").count("Subject: Note ") for path in outbox.glob("*.eml"))
            assert written == [1] * 30

            os.killpg(replica.process.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole group
            assert await _exit_code(replica) == 0
            assert "Traceback" not in replica.log(), replica.log()[-4000:]
        finally:
            replicas.kill_all()


async def test_a_worker_that_cannot_start_stops_them_all(tmp_path: Path) -> None:
    replicas = Replicas(tmp_path)
    try:
        nothing_there = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/none"
        replica = _start_workers(replicas, "workers", nothing_there)
        assert await _exit_code(replica) != 0
        assert "before it served: stopping all" in replica.log()
        assert not _children_left(replica)
    finally:
        replicas.kill_all()


def _children_left(replica: Replica) -> bool:
    """Whether any process of the replica's group is still there."""
    try:
        os.killpg(replica.process.pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_a_port_another_program_holds_is_said_at_once(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = Replicas(tmp_path).environment(f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}")
        process = await asyncio.create_subprocess_exec(
            *[sys.executable, str(ROOT / "app.py"), "--workers", "2"],
            cwd=tmp_path,
            env={**env, "PORT": str(port)},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            out, _ = await asyncio.wait_for(process.communicate(), BOUND_SECONDS)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert process.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in out.decode()
    assert "worker 0 started" not in out.decode()


@pytest.mark.parametrize("count", ["0", "many", "65"])
def test_the_worker_count_is_checked(count: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        app_main(["--workers", count])
    assert exit_.value.code == 2
    assert "give a whole number from 1 to 64" in capsys.readouterr().err


async def test_workers_stop_when_their_parent_is_killed_outright(tmp_path: Path) -> None:
    replicas = Replicas(tmp_path)
    try:
        replica = _start_workers(replicas, "workers", f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}")
        async with aiohttp.ClientSession() as session:
            await replica.wait_healthy(session)
        workers = await _until(lambda: _serving(replica, 2), "two workers listening on the port", replica)
        replica.process.kill()  # SIGKILL: the parent cannot tell anyone
        replica.process.wait()
        await _until(lambda: not _alive(workers), "the orphaned workers' end", replica, within=60)
        assert replica.log().count("is gone: stopping") == 2
    finally:
        replicas.kill_all()

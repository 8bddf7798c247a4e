"""A fake Asterisk Manager Interface on loopback, speaking the real wire format."""

from __future__ import annotations

import asyncio
import contextlib

EOL = "\r\n"


def block(**headers: str) -> bytes:
    return ("".join(f"{k}: {v}{EOL}" for k, v in headers.items()) + EOL).encode()


class FakeAmi:
    def __init__(self, secret: str = "s3cret", answer_pings: bool = True) -> None:
        self.secret = secret
        self.answer_pings = answer_pings
        self.logins = 0
        self.actions: list[dict[str, str]] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.logged_in = asyncio.Event()
        self._login_seen = asyncio.Condition()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for writer in self.writers:
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def wait_logins(self, count: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout), self._login_seen:
            await self._login_seen.wait_for(lambda: self.logins >= count)

    async def send(self, data: bytes) -> None:
        """Send raw bytes to every logged-in client at once (several events per read)."""
        for writer in self.writers:
            writer.write(data)
            await writer.drain()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/11.0.0" + EOL.encode())
        try:
            while True:
                raw = await reader.readuntil(b"\r\n\r\n")
                action = dict(line.split(": ", 1) for line in raw.decode().strip().split(EOL) if ": " in line)
                self.actions.append(action)
                await self._answer(action, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            if writer in self.writers:
                self.writers.remove(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, action: dict[str, str], writer: asyncio.StreamWriter) -> None:
        name, action_id = action.get("Action", ""), action.get("ActionID", "")
        if name == "Login":
            self.logins += 1
            async with self._login_seen:
                self._login_seen.notify_all()
            if action.get("Secret") != self.secret:
                writer.write(block(Response="Error", ActionID=action_id, Message="Authentication failed"))
                await writer.drain()
                writer.close()
                return
            writer.write(block(Response="Success", ActionID=action_id, Message="Authentication accepted"))
            writer.write(block(Event="FullyBooted", Privilege="system,all", Status="Fully Booted"))
            self.writers.append(writer)
            self.logged_in.set()
        elif name == "Ping":
            if self.answer_pings:
                writer.write(block(Response="Success", ActionID=action_id, Ping="Pong"))
        else:
            writer.write(block(Response="Success", ActionID=action_id, Message="ok"))
        await writer.drain()

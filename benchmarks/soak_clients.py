"""The soak's clients: visits of sign-up, sign-in, protected GETs, refreshes and sign-out.

Each client repeats a visit until the deadline: from one of many client addresses (sent in
``X-Forwarded-For``; the server trusts 127.0.0.1 as its proxy, so every throttle and the
access log see a different address per visit), it signs up a new user or picks an earlier
one, sometimes types a wrong password first, signs in, reads public and protected content,
refreshes with rotation a few times, presents an unknown refresh token and a garbage access
token, and then signs out, replays a spent refresh token (reuse: the session is revoked), or
walks away. Every answer is counted by what was asked and its status; a status the visit did
not expect is counted apart, and a 5xx is always unexpected.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

JSON = {"content-type": "application/json"}


@dataclass(frozen=True)
class Mix:
    """What a visit does, as chances and counts."""

    sign_up: float = 0.25  # a new user; otherwise an earlier one signs in again
    wrong_password: float = 0.2  # a failed sign-in before the right one
    refreshes: int = 5  # rotations per visit, each followed by protected GETs
    gets_per_token: int = 3
    sign_out: float = 0.7  # the rest: 0.1 replay a spent token (reuse), 0.2 walk away
    reuse: float = 0.1


@dataclass
class Tally:
    """Answers by (what, status), and those the visit did not expect."""

    answers: Counter[tuple[str, int]] = field(default_factory=Counter)
    unexpected: Counter[tuple[str, int]] = field(default_factory=Counter)
    transport_errors: Counter[str] = field(default_factory=Counter)
    visits: int = 0

    @property
    def requests(self) -> int:
        return sum(self.answers.values())

    @property
    def access_tokens(self) -> int:
        """Access tokens issued (sign-ins and refreshes answered 200): each is a new entry
        in the token cache of a worker that verifies it, until the cache is full."""
        return self.answers[("sign-in", 200)] + self.answers[("refresh", 200)]


class Pacer:
    """At most ``rate`` requests per second across every client (0: as fast as they go)."""

    def __init__(self, rate: float) -> None:
        self._interval = 1 / rate if rate > 0 else 0.0
        self._next = time.monotonic()

    async def wait(self) -> None:
        if not self._interval:
            return
        now = time.monotonic()
        self._next = max(self._next + self._interval, now)
        if self._next > now:
            await asyncio.sleep(self._next - now)


class Stop(Exception):  # noqa: N818 - a signal, not an error
    """The deadline passed: the client ends its visit."""


class Clients:
    """``count`` clients against ``base_url`` until ``deadline`` (``time.monotonic()``)."""

    def __init__(
        self,
        base_url: str,
        *,
        count: int,
        rate: float,
        addresses: int,
        workers: int,
        mix: Mix,
        seed: int,
        max_visits: int = 0,
    ) -> None:
        """``max_visits``: stop once that many visits have started (0: only the deadline)."""
        self.base_url = base_url
        self.count = count
        self.mix = mix
        self.tally = Tally()
        self._pacer = Pacer(rate)
        self._random = random.Random(seed)  # noqa: S311 - a load mix, not a secret
        self._addresses = [self._address(i) for i in range(addresses)]
        self._run = secrets.token_hex(3)
        self._password = secrets.token_urlsafe(12)
        self._users: list[str] = []
        self._signed_up = 0
        # A revocation reaches the other workers within the poll interval; until then a GET
        # with the revoked session's access token may still be answered there.
        self._after_revocation = {401} if workers == 1 else {200, 401}
        self._deadline = 0.0
        self._max_visits = max_visits
        self._started = 0

    @staticmethod
    def _address(index: int) -> str:
        return f"10.{index >> 16 & 255}.{index >> 8 & 255}.{index & 255}"

    async def run(self, deadline: float) -> Tally:
        self._deadline = deadline
        limits = httpx.Limits(max_connections=self.count, max_keepalive_connections=self.count)
        async with httpx.AsyncClient(
            base_url=self.base_url, timeout=30, trust_env=False, limits=limits
        ) as client:
            await asyncio.gather(*(self._client(client) for _ in range(self.count)))
        return self.tally

    async def _client(self, client: httpx.AsyncClient) -> None:
        while time.monotonic() < self._deadline:
            if self._max_visits and self._started >= self._max_visits:
                return
            self._started += 1
            try:
                await self._visit(client)
            except Stop:
                return
            except (httpx.TransportError, ValueError, KeyError) as error:
                # Counted; the visit is abandoned and the next one starts afresh.
                self.tally.transport_errors[type(error).__name__] += 1

    async def _call(
        self,
        client: httpx.AsyncClient,
        what: str,
        expected: set[int],
        method: str,
        path: str,
        address: str,
        *,
        body: dict[str, str] | None = None,
        token: str | None = None,
    ) -> httpx.Response:
        if time.monotonic() >= self._deadline:
            raise Stop
        await self._pacer.wait()
        headers = {"x-forwarded-for": address}
        if body is not None:
            headers.update(JSON)
        if token is not None:
            headers["x-access-token"] = token
        answer = await client.request(method, path, json=body, headers=headers)
        self.tally.answers[(what, answer.status_code)] += 1
        if answer.status_code not in expected or answer.status_code >= 500:
            self.tally.unexpected[(what, answer.status_code)] += 1
        return answer

    async def _visit(self, client: httpx.AsyncClient) -> None:
        rng, mix = self._random, self.mix
        address = rng.choice(self._addresses)
        call = self._call
        if not self._users or rng.random() < mix.sign_up:
            self._signed_up += 1
            name = f"soak{self._run}-{self._signed_up}"
            body = {"username": name, "email": f"{name}@example.com", "password": self._password}
            await call(client, "sign-up", {200}, "POST", "/api/auth/signup", address, body=body)
            self._users.append(name)
            if rng.random() < 0.05:  # the same name again: refused
                path = "/api/auth/signup"
                await call(client, "sign-up taken", {400}, "POST", path, address, body=body)
        else:
            name = rng.choice(self._users)
        if rng.random() < mix.wrong_password:
            wrong = {"username": name, "password": self._password + "x"}
            await call(
                client, "sign-in wrong", {401}, "POST", "/api/auth/signin", address, body=wrong
            )
        right = {"username": name, "password": self._password}
        signed_in = await call(
            client, "sign-in", {200}, "POST", "/api/auth/signin", address, body=right
        )
        if signed_in.status_code != 200:
            return
        tokens = signed_in.json()
        access, refresh = str(tokens["accessToken"]), str(tokens["refreshToken"])
        spent: list[str] = []
        await call(client, "public GET", {200}, "GET", "/api/test/all", address)
        for round_ in range(mix.refreshes + 1):
            for _ in range(mix.gets_per_token):
                await call(
                    client, "protected GET", {200}, "GET", "/api/test/user", address, token=access
                )
            if round_ == mix.refreshes:
                break
            rotated = await call(
                client, "refresh", {200}, "POST", "/api/auth/refreshtoken", address,
                body={"refreshToken": refresh},
            )  # fmt: skip
            if rotated.status_code != 200:
                return
            spent.append(refresh)
            pair = rotated.json()
            access, refresh = str(pair["accessToken"]), str(pair["refreshToken"])
        unknown = {"refreshToken": secrets.token_urlsafe(32)}
        await call(
            client,
            "refresh unknown",
            {403},
            "POST",
            "/api/auth/refreshtoken",
            address,
            body=unknown,
        )
        garbage = secrets.token_urlsafe(40)
        await call(
            client, "protected GET garbage", {401}, "GET", "/api/test/user", address, token=garbage
        )
        ending = rng.random()
        if ending < mix.sign_out:
            await call(
                client,
                "sign-out",
                {200},
                "POST",
                "/api/auth/signout",
                address,
                body={"refreshToken": refresh},
            )
        elif ending < mix.sign_out + mix.reuse and spent:
            replay = {"refreshToken": rng.choice(spent)}
            await call(
                client,
                "refresh reuse",
                {403},
                "POST",
                "/api/auth/refreshtoken",
                address,
                body=replay,
            )
        else:
            self.tally.visits += 1
            return  # walked away: the session expires on its own
        expected = self._after_revocation
        await call(
            client,
            "protected GET revoked",
            expected,
            "GET",
            "/api/test/user",
            address,
            token=access,
        )
        self.tally.visits += 1

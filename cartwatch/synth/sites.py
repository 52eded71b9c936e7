"""Sites, their time zones and timestamp habits, and the local-calendar arithmetic of an episode.

All generated times are UTC epoch seconds (int64). Days post-infusion are local calendar days of the
patient's site (clinical-rules.md §1), so each episode carries the UTC instants of its local midnights;
a local day on which the clocks change is 23 or 25 hours long, and nothing here assumes 24.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cached_property, lru_cache

import numpy as np

from transforms.timestamps import zone

# Naive timestamps (no offset) are read in the site time zone of the run's settings (contract.md §1);
# the sample writes them only for the site in this zone, the settings' default.
HOME_TIMEZONE = "America/New_York"


@dataclass(frozen=True)
class Site:
    """A treating centre: where its clocks are and how its systems write times and ranges."""

    code: str
    city: str
    timezone: str
    lab_system: str
    lab_clock: str        # labs extract times: "offset" (local with offset), "utc" (Z) or "naive"
    vitals_clock: str     # the bedside charting export, same choices
    sends_ranges: bool    # whether ref_low / ref_high come with each result
    language: str         # of test names ("en", "es")


SITES: dict[str, Site] = {
    "NYC": Site("NYC", "New York", "America/New_York", "EPIC_BEAKER", "offset", "naive", True, "en"),
    "CHI": Site("CHI", "Chicago", "America/Chicago", "CERNER_PATHNET", "offset", "offset", False, "en"),
    "MAD": Site("MAD", "Madrid", "Europe/Madrid", "GESTLAB", "utc", "offset", True, "es"),
}
assert all(s.timezone == HOME_TIMEZONE for s in SITES.values() if "naive" in (s.lab_clock, s.vitals_clock))


@lru_cache(maxsize=200_000)
def local_midnight(tz: str, day: date) -> int:
    """UTC epoch seconds of 00:00 local on `day` (midnight exists in every zone used here)."""
    return int(datetime(day.year, day.month, day.day, tzinfo=zone(tz)).timestamp())


def local_epoch(tz: str, when: datetime) -> int:
    """UTC epoch seconds of a naive local wall time (the first one when it is ambiguous)."""
    return int(when.replace(tzinfo=zone(tz), fold=0).timestamp())


def next_offset_change(tz: str, after: date, within_days: int = 400) -> date | None:
    """The first local date after `after` whose midnight offset differs from the day before."""
    offset = zone(tz).utcoffset(datetime.combine(after, datetime.min.time()))
    for n in range(1, within_days):
        day = after + timedelta(days=n)
        if zone(tz).utcoffset(datetime.combine(day, datetime.min.time()) + timedelta(hours=12)) != offset:
            return day
    return None


@dataclass(frozen=True)
class Calendar:
    """The local days of one episode: day 0 is the infusion's local date.

    `starts[i]` is the UTC instant of 00:00 local on day `first_day + i`; one extra entry closes
    the last day, so `starts[i + 1] - starts[i]` is that day's true length.
    """

    tz: str
    day0: date
    first_day: int
    starts: np.ndarray

    @classmethod
    def around(cls, tz: str, day0: date, first_day: int, last_day: int) -> "Calendar":
        days = [day0 + timedelta(days=d) for d in range(first_day, last_day + 2)]
        return cls(tz, day0, first_day, np.array([local_midnight(tz, d) for d in days], dtype=np.int64))

    @property
    def last_day(self) -> int:
        return self.first_day + len(self.starts) - 2

    def start(self, day: int) -> int:
        """00:00 local of `day`, as UTC epoch seconds."""
        return int(self.starts[day - self.first_day])

    def at(self, day: np.ndarray | int, minute: np.ndarray | int) -> np.ndarray:
        """Instants at local wall-clock `minute` (minutes after 00:00) of `day`.

        On the 23- or 25-hour day of a clock change the wall clock and the elapsed time part;
        those few instants are placed through the zone (the first one, if a time repeats)."""
        if np.ndim(day) == 0 and np.ndim(minute) == 0:
            return self._at_one(int(day), int(minute))
        day, minute = np.broadcast_arrays(np.asarray(day), np.asarray(minute, dtype=np.int64))
        index = day - self.first_day
        out = self.starts[index] + minute * 60
        for i in np.flatnonzero(np.diff(self.starts)[index] != 86_400):
            wall = datetime.combine(self.date_of(int(day.flat[i])), datetime.min.time())
            out.flat[i] = local_epoch(self.tz, wall + timedelta(minutes=int(minute.flat[i])))
        return out

    def _at_one(self, day: int, minute: int) -> np.int64:
        i = day - self.first_day
        if self.starts[i + 1] - self.starts[i] == 86_400:
            return self.starts[i] + minute * 60
        return np.int64(local_epoch(self.tz, datetime.combine(self.date_of(day), datetime.min.time())
                                    + timedelta(minutes=minute)))

    def day_of(self, t: np.ndarray | int) -> np.ndarray:
        """Day post-infusion (local calendar) of each instant."""
        return np.searchsorted(self.starts, t, side="right") - 1 + self.first_day

    @cached_property
    def _starts_list(self) -> list[int]:
        return self.starts.tolist()

    def day_number(self, t: int) -> int:
        """Day post-infusion of one instant (a plain int, for per-result code)."""
        return bisect.bisect_right(self._starts_list, t) - 1 + self.first_day

    def date_of(self, day: int) -> date:
        return self.day0 + timedelta(days=day)

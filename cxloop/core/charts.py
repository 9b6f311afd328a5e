"""Charts for the web pages: Vega-Lite specs built with altair, rendered to SVG on the server.

The SVG is produced by vl-convert inside this process: no JavaScript in the browser, no fonts
or data fetched from anywhere (``allowed_base_urls=[]``). The SVG keeps its ``viewBox``, so the
page's CSS (``.chart svg {max-width: 100%; height: auto}``) scales it to the column it sits in.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import functools
import hashlib
import json
import logging
import pickle
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import altair as alt
import vl_convert
from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest
from django.utils import formats, translation
from django.utils.http import urlencode
from django.utils.translation import get_language
from django.utils.translation import gettext as _

log = logging.getLogger(__name__)

BRAND = "#2f5bea"
BRAND_LIGHT = "#aebff7"
INK = "#1d2433"
MUTED = "#5c6577"
GRID = "#e3e7ee"
# The page's own font stack (the spec's ``config.font``).
FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", "Noto Sans", sans-serif'
# The font vl-convert lays the text out with (``render_svg``): its bundled sans-serif,
# Liberation Sans.
MEASURE_FONT = "sans-serif"
# What the browser draws the SVG's text with: first the fonts with the measured font's
# metrics (Liberation Sans, Arial, Arimo, Helvetica), then the page's. A wider font than the
# one measured (DejaVu Sans, the system-ui of many Linux desktops) pushes right-aligned labels
# out of the chart: "Chișinău Botanica" lost its first letter beside the bars.
DRAW_FONT = '"Liberation Sans", Arial, Arimo, Helvetica, ' + FONT
_MEASURE_ATTRIBUTE = f'font-family="{MEASURE_FONT}"'
_DRAW_ATTRIBUTE = 'font-family="{}"'.format(DRAW_FONT.replace('"', "&quot;"))


def _register_bundled_font() -> None:
    """Charts turned into PNG (the digest, the PDF report) are drawn by vl-convert with the
    fonts it knows: add Noto Sans from its wheel, so that Cyrillic and ș/ț render on a machine
    without system fonts."""
    try:
        import fontpkg_noto_sans

        vl_convert.register_font_directory(str(Path(fontpkg_noto_sans.ROOT) / "files"))
    except Exception:  # pragma: no cover - the system's fonts remain
        logging.getLogger(__name__).warning("chart_font_not_registered", exc_info=True)


_register_bundled_font()

# Width of the chart in the full-width panel of the home page (the panel's inner width at the
# page's maximum width); narrower screens scale the SVG down.
WIDE = 1090
# Width of a chart in one of the home page's smaller panels.
NARROW = 520

# d3-time-format has no Romanian locale; this one follows CLDR.
_RO_TIME = {
    "dateTime": "%A, %e %B %Y, %X",
    "date": "%d.%m.%Y",
    "time": "%H:%M:%S",
    "periods": ["AM", "PM"],
    "days": ["duminică", "luni", "marți", "miercuri", "joi", "vineri", "sâmbătă"],
    "shortDays": ["dum.", "lun.", "mar.", "mie.", "joi", "vin.", "sâm."],
    "months": ["ianuarie", "februarie", "martie", "aprilie", "mai", "iunie", "iulie",
               "august", "septembrie", "octombrie", "noiembrie", "decembrie"],
    "shortMonths": ["ian.", "feb.", "mar.", "apr.", "mai", "iun.", "iul.", "aug.", "sept.",
                    "oct.", "nov.", "dec."],
}  # fmt: skip
_TIME_LOCALES: dict[str, Any] = {"en": "en-GB", "ru": "ru-RU", "ro": _RO_TIME}


def _format_locale(language: str) -> dict[str, Any]:
    # Thousands are separated by a narrow space, as the ``thousands`` template filter does.
    decimal = "." if language == "en" else ","
    return {"decimal": decimal, "thousands": "\u202f", "grouping": [3], "currency": ["", ""]}


def _language() -> str:
    return (get_language() or "en").split("-")[0]


def _config() -> dict[str, Any]:
    return {
        "font": FONT,
        "background": "white",
        "view": {"stroke": None},
        "axis": {
            "labelColor": MUTED,
            "labelFontSize": 12,
            "titleColor": MUTED,
            "titleFontWeight": "normal",
            "domainColor": GRID,
            "tickColor": GRID,
            "gridColor": GRID,
        },
    }


def render_svg(chart: alt.TopLevelMixin, datasets: dict[str, list[Any]] | None = None) -> str:
    """The chart as an SVG document (a string that starts with ``<svg``).

    Rendering is the costly part of a page (vl-convert runs Vega in-process), so:

    * the text is laid out with ``MEASURE_FONT``, the sans-serif font bundled in vl-convert
      (Liberation Sans, metrically compatible with Arial), and the SVG then names
      ``DRAW_FONT``: fonts of the same metrics first, the page's own stack after them.
      Measuring with a system font found on disk (DejaVu Sans, Noto Sans) made vl-convert
      4-8 times slower: a heat map of 168 cells took 0.5-0.9 s instead of 0.06-0.13 s;
    * the SVG is kept for the same spec and language, in this process and in Django's cache
      (Redis with ``CACHE_URL``: one web worker draws it for all); the builders of the pages'
      charts are also ``cached`` by their data, which skips altair as well;
    * the spec is built without altair's JSON-schema validation, which our own builders do not
      need at run time, and ``datasets`` (name → rows, for charts built on
      ``alt.Data(name=…)``) go into the spec as they are, without altair walking every row.
    """
    spec = chart.to_dict(validate=False)
    spec.pop("$schema", None)
    spec.setdefault("config", {})["font"] = MEASURE_FONT
    if datasets:
        spec["datasets"] = {**spec.get("datasets", {}), **datasets}
    text = json.dumps(spec, sort_keys=True, default=str)
    language = _language()
    # vl-convert's version is part of the key (another Vega may draw the same spec
    # otherwise), and so is the font the SVG names.
    digest = hashlib.blake2b(
        f"{_VL_VERSION}\n{_DRAW_ATTRIBUTE}\n{language}\n{text}".encode(), digest_size=16
    ).hexdigest()
    key = f"spec:{digest}"
    svg = _kept(key)
    if svg is None:
        svg = _draw(text, language)
        _keep(key, svg)
    return svg


Builder = TypeVar("Builder", bound=Callable[..., str | None])
_code_versions: dict[str, str] = {}


def _code_version(module: str) -> str:
    """A fingerprint of the chart code: the builder's module, this one and vl-convert's
    version (a new release must not find the drawings of the old code in Redis)."""
    version = _code_versions.get(module)
    if version is None:
        digest = hashlib.blake2b(_VL_VERSION.encode(), digest_size=8)
        for name in (__name__, module):
            path = getattr(sys.modules.get(name), "__file__", None)
            digest.update(Path(path).read_bytes() if path else name.encode())
        version = _code_versions[module] = digest.hexdigest()
    return version


def cached(builder: Builder) -> Builder:
    """A chart builder (data → SVG or None) whose drawings are kept by its arguments and the
    language, so that a page asked again with the same numbers skips altair and vl-convert
    (building a dashboard's three specs costs 0.1-0.2 s before any drawing).

    Inside a ``slot`` (a place on a page), new numbers are not drawn during the request when
    the place has a drawing: younger than ``CHART_MAX_AGE`` seconds, it is shown; older (up
    to ``REDRAW_WITHIN`` times that), it is shown while a thread draws the new numbers for
    the next request (once per place at a time). The slot is marked ``stale`` with the time
    of that drawing. Without a drawing, or with an older one, the request draws.
    Arguments that cannot be pickled (never the case for ours) are drawn each time."""

    @functools.wraps(builder)
    def wrapper(*args: Any, **kwargs: Any) -> str | None:
        language = _language()
        try:
            blob = pickle.dumps((args, sorted(kwargs.items())), protocol=5)
        except Exception:
            return builder(*args, **kwargs)
        digest = hashlib.blake2b(digest_size=16)
        for part in (_code_version(builder.__module__), builder.__qualname__, language):
            digest.update(part.encode() + b"\0")
        digest.update(blob)
        key = f"data:{digest.hexdigest()}"
        svg = _kept(key)
        if svg is not None:
            return svg
        place = _slot.get()
        if place is not None:
            earlier = _earlier(place, language)
            if earlier is not None:
                old, drawn_at, fresh = earlier
                if not fresh:
                    _redraw_later(builder, args, kwargs, key, place.name, language)
                place.stale = True
                place.drawn_at = min(drawn_at, place.drawn_at or drawn_at)
                return old
        svg = builder(*args, **kwargs)
        if svg is not None:
            _keep(key, svg)
            if place is not None:
                _set(_slot_key(place.name, language), (key, time.time()))
        return svg

    return wrapper  # type: ignore[return-value]


REDRAW_WITHIN = 10  # a drawing up to 10 x CHART_MAX_AGE old is shown while a thread redraws
_redrawing: list[threading.Thread] = []  # the threads started (tests wait for them)


def _redraw_later(
    builder: Callable[..., str | None],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    key: str,
    name: str,
    language: str,
) -> None:
    """Draw the place's new numbers in a thread (the request goes on with the old drawing);
    one thread per place and language at a time across workers (``cache.add``)."""
    lock = f"{_slot_key(name, language)}:drawing"
    try:
        if not cache.add(lock, 1, timeout=120):
            return
    except Exception:  # pragma: no cover
        log.warning("chart_cache_unavailable", exc_info=True)
        return

    def draw() -> None:
        try:
            with translation.override(language):
                svg = builder(*args, **kwargs)
            if svg is not None:
                _keep(key, svg)
                _set(_slot_key(name, language), (key, time.time()))
        except Exception:
            log.exception("chart_redraw_failed")
        finally:
            with contextlib.suppress(Exception):
                cache.delete(lock)

    thread = threading.Thread(target=draw, name="chart-redraw", daemon=True)
    del _redrawing[:-16]
    _redrawing.append(thread)
    thread.start()


# --- keeping what was drawn --------------------------------------------------------------

_VL_VERSION = getattr(vl_convert, "__version__", "")
SVG_TTL = 24 * 3600  # seconds an SVG stays in the shared cache
_generation = 0  # ``clear_cache`` moves it on: keys of before are not found again
_local: OrderedDict[str, str] = OrderedDict()  # this process's last 256 SVGs
_LOCAL_SIZE = 256
_local_lock = threading.Lock()  # the redrawing threads use it too


@dataclass
class Slot:
    """Where a chart appears (a page, its filters, who looks), and whether the chart shown
    there was an older drawing (``stale``)."""

    name: str
    stale: bool = False
    drawn_at: float | None = None  # when the oldest earlier drawing shown was made (epoch)


def stale_since(place: Slot, tz: dt.tzinfo) -> dt.datetime | None:
    """When the earlier drawing shown in ``place`` was made, in ``tz``; None when the chart
    shown is of the current numbers (the pages say so beside the chart)."""
    if not place.stale or place.drawn_at is None:
        return None
    return dt.datetime.fromtimestamp(place.drawn_at, dt.UTC).astimezone(tz)


_slot: contextvars.ContextVar[Slot | None] = contextvars.ContextVar("chart_slot", default=None)


@contextlib.contextmanager
def slot(name: str) -> Iterator[Slot]:
    """Charts drawn inside (by ``cached`` builders) are those of one place on a page
    (``name``: the page, its filters, the chart, whose numbers they are — see ``page_slot``).

    When the data under such a chart changed, the drawing of that place made less than
    ``CHART_MAX_AGE`` seconds ago is shown instead of drawing again (and ``Slot.stale`` says
    so): with answers arriving every few seconds, a dashboard would otherwise draw its charts
    on every request (0.3-0.5 s of CPU). The tables beside are always current; a chart is at
    most ``CHART_MAX_AGE`` seconds behind them. 0 turns this off.
    """
    place = Slot(name)
    token = _slot.set(place)
    try:
        yield place
    finally:
        _slot.reset(token)


def page_slot(request: HttpRequest, chart: str, *, personal: bool = False) -> str:
    """A slot name for ``chart`` on the page of ``request``: its path and query (without the
    download parameters), and the workspace — or, with ``personal``, the member (a supervisor's
    charts show their teams only)."""
    membership = getattr(request, "membership", None)
    if membership is None:
        who = "anonymous"
    elif personal:
        who = f"m{membership.pk}"
    else:
        who = f"w{membership.workspace_id}"
    query = sorted(
        (key, value)
        for key, values in request.GET.lists()
        if key not in ("format", "table")
        for value in values
    )
    return f"{who}:{request.path}?{urlencode(query)}#{chart}"


def _svg_key(key: str) -> str:
    return f"chart:{_generation}:{key}"


def _slot_key(name: str, language: str) -> str:
    digest = hashlib.blake2b(name.encode(), digest_size=16).hexdigest()
    return f"chart:{_generation}:slot:{language}:{digest}"


def _kept(key: str) -> str | None:
    with _local_lock:
        svg = _local.get(key)
        if svg is not None:
            _local.move_to_end(key)
            return svg
    try:
        svg = cache.get(_svg_key(key))
    except Exception:  # pragma: no cover - a cache that is down costs a drawing, not the page
        log.warning("chart_cache_unavailable", exc_info=True)
        return None
    if isinstance(svg, str):
        _remember(key, svg)
        return svg
    return None


def _keep(key: str, svg: str) -> None:
    _remember(key, svg)
    _set(_svg_key(key), svg)


def _set(key: str, value: Any) -> None:
    try:
        cache.set(key, value, SVG_TTL)
    except Exception:  # pragma: no cover - a cache that is down costs drawings, not the page
        log.warning("chart_cache_unavailable", exc_info=True)


def _remember(key: str, svg: str) -> None:
    with _local_lock:
        _local[key] = svg
        _local.move_to_end(key)
        while len(_local) > _LOCAL_SIZE:
            _local.popitem(last=False)


def _earlier(place: Slot, language: str) -> tuple[str, float, bool] | None:
    """The drawing last made for this place, when at most ``REDRAW_WITHIN`` x
    ``CHART_MAX_AGE`` old: (SVG, when drawn, whether younger than ``CHART_MAX_AGE``)."""
    max_age = float(getattr(settings, "CHART_MAX_AGE", 0))
    if max_age <= 0:
        return None
    try:
        entry = cache.get(_slot_key(place.name, language))
    except Exception:  # pragma: no cover
        log.warning("chart_cache_unavailable", exc_info=True)
        return None
    if not (isinstance(entry, tuple) and len(entry) == 2):
        return None
    key, drawn_at = entry
    age = time.time() - float(drawn_at)
    if age >= REDRAW_WITHIN * max_age:
        return None
    svg = _kept(str(key))
    return None if svg is None else (svg, float(drawn_at), age < max_age)


def _draw(spec: str, language: str) -> str:
    svg: str = vl_convert.vegalite_to_svg(
        json.loads(spec),
        allowed_base_urls=[],
        format_locale=_format_locale(language),
        time_format_locale=_TIME_LOCALES.get(language, "en-GB"),
    )
    return svg.replace(_MEASURE_ATTRIBUTE, _DRAW_ATTRIBUTE)


def svg_to_png(svg: str, scale: float | None = None) -> bytes:
    """A chart of ``render_svg`` as PNG, drawn by vl-convert with the font its text was
    measured with (the page's stack would pick DejaVu or Noto Sans, wider than the layout)."""
    png: bytes = vl_convert.svg_to_png(
        svg.replace(_DRAW_ATTRIBUTE, _MEASURE_ATTRIBUTE), scale=scale
    )
    return png


def clear_cache() -> None:
    """Forget the rendered charts, here and (by a new key generation) in the shared cache:
    tests that make rendering fail, benchmarks of a first drawing."""
    global _generation
    _generation += 1
    with _local_lock:
        _local.clear()


def _monday(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def weekly_rows(
    weekly: Sequence[tuple[dt.date, int]], today: dt.date, since: dt.date | None = None
) -> list[dict[str, Any]]:
    """One row per week from the first week with data to this week, empty weeks as zeros.

    A week that starts before ``since`` (where the counted period begins) holds only the days
    after ``since``: it is left out rather than drawn as a misleading dip.
    """
    counts: dict[dt.date, int] = {}
    for week, n in weekly:
        monday = _monday(week)
        counts[monday] = counts.get(monday, 0) + n
    if since is not None and any(week >= since for week in counts):
        counts = {week: n for week, n in counts.items() if week >= since}
    if not counts:
        return []
    this_week = _monday(today)
    first = min(counts)
    last = max(this_week, max(counts))
    rows = []
    week = first
    while week <= last:
        rows.append(
            {
                "week": week.isoformat(),
                # The bar covers Monday to Saturday: Sunday is left as the gap between bars.
                "end": (week + dt.timedelta(days=6)).isoformat(),
                "n": counts.get(week, 0),
                "partial": week == this_week,
                "label": _("Week of %(date)s: %(count)s")
                % {"date": formats.date_format(week, "DATE_FORMAT"), "count": counts.get(week, 0)},
            }
        )
        week += dt.timedelta(days=7)
    return rows


def weekly_interactions_chart(
    weekly: Sequence[tuple[dt.date, int]],
    today: dt.date,
    since: dt.date | None = None,
    width: int = WIDE,
) -> alt.Chart | None:
    """Interactions per week as bars; the week in progress is drawn lighter. None when empty."""
    rows = weekly_rows(weekly, today, since)
    if not rows or not any(row["n"] for row in rows):
        return None
    if len(rows) > 20:
        # Months; the year is written on the first label and on each January.
        axis = alt.Axis(
            labelExpr="datum.index == 0 || utcmonth(datum.value) == 0"
            " ? utcFormat(datum.value, '%b %Y') : utcFormat(datum.value, '%b')",
            tickCount={"interval": "month", "step": 1},
        )
    else:
        axis = alt.Axis(format="%d %b", tickCount={"interval": "week", "step": 1})
    axis.labelOverlap = "greedy"
    axis.labelSeparation = 8
    axis.labelFlush = False
    axis.grid = False
    x = alt.X("week:T", title=None, scale=alt.Scale(type="utc"), axis=axis)
    y = alt.Y(
        "n:Q",
        title=None,
        axis=alt.Axis(format=",d", tickMinStep=1, tickCount=5, domain=False, ticks=False),
    )
    bars = (
        alt.Chart(alt.Data(values=rows))
        .mark_bar(cornerRadiusTopLeft=2, cornerRadiusTopRight=2)
        .encode(
            x=x,
            x2="end:T",
            y=y,
            # With x and x2 given, a bar is read as horizontal unless y2 is given too.
            y2=alt.Y2Datum(0),
            description=alt.Description("label:N"),
            color=alt.condition(alt.datum.partial, alt.value(BRAND_LIGHT), alt.value(BRAND)),
        )
    )
    chart: alt.Chart = bars.properties(
        width=width,
        height=220,
        autosize=alt.AutoSizeParams(type="fit", contains="padding"),
        description=_("Interactions per week"),
        padding={"left": 4, "top": 10, "bottom": 4, "right": 8},
    ).configure(**_config())
    return chart


def interaction_types_chart(
    types: Sequence[tuple[str, int]], width: int = NARROW
) -> alt.Chart | None:
    """Horizontal bars, one per interaction type, the count written at the end of each bar."""
    rows = [{"type": name, "n": n} for name, n in types if n]
    if not rows:
        return None
    order = [name for name, n in types if n]
    base = alt.Chart(alt.Data(values=rows)).encode(
        y=alt.Y(
            "type:N",
            title=None,
            sort=order,
            axis=alt.Axis(
                labelLimit=150,
                domain=False,
                ticks=False,
                labelPadding=6,
                labelColor=INK,
                labelFontSize=14,
            ),
        ),
        x=alt.X("n:Q", title=None, axis=None, scale=alt.Scale(nice=False)),
    )
    bars = base.mark_bar(color=BRAND, cornerRadiusEnd=2, height={"band": 0.7})
    labels = base.mark_text(align="left", dx=5, color=MUTED, fontSize=13).encode(
        text=alt.Text("n:Q", format=",d")
    )
    chart: alt.Chart = (
        alt.layer(bars, labels)
        .properties(
            width=width,
            height={"step": 30},
            autosize=alt.AutoSizeParams(type="fit-x", contains="padding"),
            description=_("Interaction types, last 30 days"),
            # Room on the right for the count written after the longest bar.
            padding={"left": 4, "top": 4, "bottom": 4, "right": 44},
        )
        .configure(**_config())
    )
    return chart


def weekly_interactions_svg(
    weekly: Sequence[tuple[dt.date, int]], today: dt.date, since: dt.date | None = None
) -> str | None:
    """The weekly chart as SVG, or None when there is nothing to draw."""
    chart = weekly_interactions_chart(weekly, today, since)
    return render_svg(chart) if chart is not None else None


def interaction_types_svg(types: Sequence[tuple[str, int]]) -> str | None:
    """The interaction types chart as SVG, or None when there is nothing to draw."""
    chart = interaction_types_chart(types)
    return render_svg(chart) if chart is not None else None

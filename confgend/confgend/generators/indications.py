"""indications.conf: the call progress tones (dial, ring, busy, congestion...) of the country set in
`asterisk.indications.country` (`us` by default), and those of a few other countries a phone or a queue can
ask for. Tones are frequency/duration lists as Asterisk reads them."""

from __future__ import annotations

from confdb.read.confgend import Snapshot
from confgend import escape
from confgend.generators.base import ConfWriter, Context

ZONES: dict[str, dict[str, str]] = {
    "be": {
        "description": "Belgium",
        "ringcadence": "1000,3000",
        "dial": "425",
        "busy": "425/500,0/500",
        "ring": "425/1000,0/3000",
        "congestion": "425/167,0/167",
        "callwaiting": "1400/175,0/175,1400/175,0/3500",
        "dialrecall": "!350+440/100,!0/100,!350+440/100,!0/100,!350+440/100,!0/100,350+440",
        "record": "1400/500,0/15000",
        "info": "900/330,1400/330,1800/330,0/1000",
        "stutter": "425/1000,0/250",
    },
    "ch": {
        "description": "Switzerland",
        "ringcadence": "1000,4000",
        "dial": "425",
        "busy": "425/500,0/500",
        "ring": "425/1000,0/4000",
        "congestion": "425/200,0/200",
        "callwaiting": "425/200,0/200,425/200,0/4000",
        "dialrecall": "!425/100,!0/100,!425/100,!0/100,!425/100,!0/100,425",
        "record": "1400/80,0/15000",
        "info": "950/330,1400/330,1800/330,0/1000",
        "stutter": "425+340/1100,0/1100",
    },
    "de": {
        "description": "Germany",
        "ringcadence": "1000,4000",
        "dial": "425",
        "busy": "425/480,0/480",
        "ring": "425/1000,0/4000",
        "congestion": "425/240,0/240",
        "callwaiting": (
            "!425/200,!0/200,!425/200,!0/5000,!425/200,!0/200,!425/200,!0/5000,!425/200"
            ",!0/200,!425/200,!0/5000,!425/200,!0/200,!425/200,!0/5000,!425/200,!0/200"
            ",!425/200,0"
        ),
        "dialrecall": "!425/100,!0/100,!425/100,!0/100,!425/100,!0/100,425",
        "record": "1400/80,0/15000",
        "info": "950/330,1400/330,1800/330,0/1000",
        "stutter": "425+400",
    },
    "es": {
        "description": "Spain",
        "ringcadence": "1500,3000",
        "dial": "425",
        "busy": "425/200,0/200",
        "ring": "425/1500,0/3000",
        "congestion": "425/200,0/200,425/200,0/200,425/200,0/600",
        "callwaiting": "425/175,0/175,425/175,0/3500",
        "dialrecall": "!425/200,!0/200,!425/200,!0/200,!425/200,!0/200,425",
        "record": "1400/500,0/15000",
        "info": "950/330,0/1000",
        "dialout": "500",
        "stutter": (
            "!425/100,!0/100,!425/100,!0/100,!425/100,!0/100,!425/100,!0/100,!425/100,!0/100"
            ",!425/100,!0/100,425"
        ),
    },
    "fr": {
        "description": "France",
        "ringcadence": "1500,3500",
        "dial": "440",
        "busy": "440/500,0/500",
        "ring": "440/1500,0/3500",
        "congestion": "440/250,0/250",
        "callwait": "440/300,0/10000",
        "dialrecall": "!350+440/100,!0/100,!350+440/100,!0/100,!350+440/100,!0/100,350+440",
        "record": "1400/500,0/15000",
        "info": "!950/330,!1400/330,!1800/330",
        "stutter": (
            "!440/100,!0/100,!440/100,!0/100,!440/100,!0/100,!440/100,!0/100,!440/100,!0/100"
            ",!440/100,!0/100,440"
        ),
    },
    "it": {
        "description": "Italy",
        "ringcadence": "1000,4000",
        "dial": "425/200,0/200,425/600,0/1000",
        "busy": "425/500,0/500",
        "ring": "425/1000,0/4000",
        "congestion": "425/200,0/200",
        "callwaiting": "425/400,0/100,425/250,0/100,425/150,0/14000",
        "dialrecall": "470/400,425/400",
        "record": "1400/400,0/15000",
        "info": (
            "!950/330,!1400/330,!1800/330,!0/1000,!950/330,!1400/330,!1800/330,!0/1000"
            ",!950/330,!1400/330,!1800/330,!0/1000,0"
        ),
        "stutter": "470/400,425/400",
    },
    "nl": {
        "description": "Netherlands",
        "ringcadence": "1000,4000",
        "dial": "425",
        "busy": "425/500,0/500",
        "ring": "425/1000,0/4000",
        "congestion": "425/250,0/250",
        "callwaiting": "425/500,0/9500",
        "dialrecall": "425/500,0/50",
        "record": "1400/500,0/15000",
        "info": "950/330,1400/330,1800/330,0/1000",
        "stutter": "425/500,0/50",
    },
    "uk": {
        "description": "United Kingdom",
        "ringcadence": "400,200,400,2000",
        "dial": "350+440",
        "specialdial": "350+440/750,440/750",
        "busy": "400/375,0/375",
        "congestion": "400/400,0/350,400/225,0/525",
        "specialcongestion": "400/200,1004/300",
        "unobtainable": "400",
        "ring": "400+450/400,0/200,400+450/400,0/2000",
        "callwaiting": "400/100,0/4000",
        "specialcallwaiting": "400/250,0/250,400/250,0/250,400/250,0/5000",
        "creditexpired": "400/125,0/125",
        "confirm": "1400",
        "switching": "400/200,0/400,400/2000,0/400",
        "info": "950/330,0/15,1400/330,0/15,1800/330,0/1000",
        "record": "1400/500,0/60000",
        "stutter": "350+440/750,440/750",
    },
    "us": {
        "description": "United States / North America",
        "ringcadence": "2000,4000",
        "dial": "350+440",
        "busy": "480+620/500,0/500",
        "ring": "440+480/2000,0/4000",
        "congestion": "480+620/250,0/250",
        "callwaiting": "440/300,0/10000",
        "dialrecall": "!350+440/100,!0/100,!350+440/100,!0/100,!350+440/100,!0/100,350+440",
        "record": "1400/500,0/15000",
        "info": "!950/330,!1400/330,!1800/330,0",
        "stutter": (
            "!350+440/100,!0/100,!350+440/100,!0/100,!350+440/100,!0/100,!350+440/100,!0/100"
            ",!350+440/100,!0/100,!350+440/100,!0/100,350+440"
        ),
    },
}


def generate(snap: Snapshot, ctx: Context) -> str:
    country = ctx.setting("indications", "country", default="us")
    if country not in ZONES:
        known = ", ".join(sorted(ZONES))
        raise escape.Unsafe(f"asterisk.indications.country {country!r} is not one of {known}")
    out = ConfWriter("generated by confgend: do not edit")
    out.raw_section("general")
    out.option("country", country)
    for name, tones in ZONES.items():
        out.raw_section(name)
        out.options(tones.items())
    return out.render()

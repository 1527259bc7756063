# Writes genai-prices' packaged price data (genai_prices/data.py in the
# PyPI wheel) as the JSON layout of the upstream prices/data.json, keeping
# only the providers aivis prices. Usage, from an unzipped wheel:
#   python3 extract_genai_prices.py WHEEL_DIR anthropic,openai,google,aws,mistral > genai-prices.json
# genai_prices/__init__.py imports httpx2; put an empty httpx2 package on
# sys.path if it is not installed.
import dataclasses
import datetime
import decimal
import json
import sys

sys.path.insert(0, sys.argv[1])
from genai_prices import data  # noqa: E402
from genai_prices import types as T  # noqa: E402

keep = set(sys.argv[2].split(','))


def conv(o):
    if isinstance(o, decimal.Decimal):
        f = float(o)
        assert decimal.Decimal(repr(f)) == o, o  # JSON numbers stay exact
        return f
    if isinstance(o, (datetime.date, datetime.time)):
        return o.isoformat()
    if isinstance(o, T.ModelPrice):
        return {k: conv(v) for k, v in o.__dict__.items() if v is not None and not k.startswith('_')}
    if isinstance(o, T.ClauseOr):
        return {'or': [conv(x) for x in o.or_]}
    if isinstance(o, T.ClauseAnd):
        return {'and': [conv(x) for x in o.and_]}
    if dataclasses.is_dataclass(o):
        return {f.name: conv(getattr(o, f.name)) for f in dataclasses.fields(o)
                if not f.name.startswith('_') and f.name != 'extractors' and getattr(o, f.name) is not None}
    if isinstance(o, list):
        return [conv(x) for x in o]
    if isinstance(o, dict):
        return {k: conv(v) for k, v in o.items()}
    return o


json.dump([conv(p) for p in data.providers if p.id in keep], sys.stdout, indent=1)

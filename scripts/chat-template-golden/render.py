#!/usr/bin/env python3
"""Renders chat templates as transformers' apply_chat_template does, for ChatTemplate's tests.

    python3 scripts/chat-template-golden/render.py

Needs only Python 3 and Jinja2 (Debian: python3-jinja2); CI never runs it. The environment is transformers'
(_compile_jinja_template): ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True) with the loopcontrols
extension, its tojson (json.dumps with ensure_ascii=False), raise_exception and strftime_now. Writes
tests/fixtures/tokenizers/chat_templates.golden.jsonl: one JSON object per case, {"template": name, "messages",
"tools" (or null), "add_generation_prompt", "text"} or, where the template raises, "error" instead of "text". The
templates: DeepSeek-V3's own (tests/fixtures/tokenizers/deepseek_v3/tokenizer_config.json) and the ones in
templates/ (written for these tests, each exercising part of the Jinja that chat templates use).
"""
import json
import os
from datetime import datetime

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
FIXTURES = os.path.join(REPO, "tests", "fixtures", "tokenizers")


def environment():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda f: datetime.now().strftime(f)
    return env


def system(c): return {"role": "system", "content": c}
def user(c): return {"role": "user", "content": c}
def assistant(c): return {"role": "assistant", "content": c}
def tool(c, call_id=None):
    m = {"role": "tool", "content": c}
    if call_id is not None:
        m["tool_call_id"] = call_id
    return m
def calls(*cs):
    return {"role": "assistant", "content": None, "tool_calls": [
        dict({"type": "function", "function": {"name": n, "arguments": a}}, **({"id": i} if i else {})) for n, a, i in cs]}


WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "The weather in a city, now.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "e.g. Paris"},
                                                            "unit": {"type": "string", "enum": ["c", "f"]}},
                          "required": ["city"]}}}
TIME = {"type": "function", "function": {"name": "get_time", "description": "Local time \u00e0 la ville; \"quoted\".",
        "parameters": {"type": "object", "properties": {}}}}

PLAIN = [
    [user("hi")],
    [system("You are helpful."), user("What is 2+2?"), assistant("4"), user("And 3+3?")],
    [system("A"), system("B"), user("x")],
    [],
    [user("line one\nline two\n\n  indented"), assistant("```python\nprint(\"x\")\n```"), user("next")],
    [user("Gr\u00fc\u00dfe, \u4f60\u597d, \U0001F44B\U0001F3FD"), assistant("\U0001F600 ok"), user("\U0001D518")],
    [system("sys"), user("q1"), assistant("<think>\nhmm\n</think>\n\nanswer"), user("q2")],
]
TOOLS = [
    [user("Weather in Paris?"), calls(("get_weather", "{\"city\": \"Paris\"}", "call_0"))],
    [user("Weather in Paris?"), calls(("get_weather", "{\"city\": \"Paris\"}", "call_0")), tool("{\"temp\": 21}", "call_0")],
    [user("Weather in Paris?"), calls(("get_weather", "{\"city\": \"Paris\"}", "call_0")), tool("{\"temp\": 21}", "call_0"),
     assistant("It is 21 \u00b0C in Paris.")],
    [system("Use tools."), user("Paris and Rome?"),
     calls(("get_weather", "{\"city\": \"Paris\"}", "a"), ("get_weather", "{\"city\": \"Rome\", \"unit\": \"c\"}", "b")),
     tool("21", "a"), tool("25", "b"), assistant("Paris 21, Rome 25."), user("And the time?")],
    [user("Time and weather?"), calls(("get_time", "{}", None)), tool("10:00"), calls(("get_weather", "{\"city\": \"Oslo\"}", None)),
     tool("-3"), assistant("10:00 and -3."), user("Thanks")],
]


def cases():
    v3 = json.load(open(os.path.join(FIXTURES, "deepseek_v3", "tokenizer_config.json"), encoding="utf-8"))
    templates = [("deepseek_v3", v3["chat_template"])]
    folder = os.path.join(HERE, "templates")
    for name in sorted(os.listdir(folder)):
        templates.append((os.path.splitext(name)[0], open(os.path.join(folder, name), encoding="utf-8").read()))
    for name, source in templates:
        conversations = [(c, None) for c in PLAIN + TOOLS]
        if name != "deepseek_v3":
            conversations += [(c, [WEATHER, TIME]) for c in [PLAIN[0], TOOLS[1], TOOLS[3]]]
        for messages, tools in conversations:
            for add in (True, False):
                yield name, source, messages, tools, add


def main():
    env = environment()
    lines = []
    for name, source, messages, tools, add in cases():
        context = {"messages": messages, "add_generation_prompt": add, "bos_token": "<BOS>", "eos_token": "<EOS>"}
        if name == "deepseek_v3":
            context["bos_token"], context["eos_token"] = "<\uff5cbegin\u2581of\u2581sentence\uff5c>", "<\uff5cend\u2581of\u2581sentence\uff5c>"
        if tools is not None:
            context["tools"] = tools
        case = {"template": name, "messages": messages, "tools": tools, "add_generation_prompt": add,
                "bos_token": context["bos_token"], "eos_token": context["eos_token"]}
        try:
            case["text"] = env.from_string(source).render(**context)
        except jinja2.exceptions.TemplateError as e:
            case["error"] = str(e)
        lines.append(json.dumps(case, ensure_ascii=False))
    out = os.path.join(FIXTURES, "chat_templates.golden.jsonl")
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {len(lines)} cases to {os.path.relpath(out, REPO)}")


if __name__ == "__main__":
    main()

"""Unit tests of model specs, the python: provider's calling convention and trial seeds (DESIGN §3)."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_autoevolve.graders.builtin import equals
from pytest_autoevolve.providers.base import ModelRequest, ModelSpec, ModelSpecError, Reply, parse_spec, reply_from
from pytest_autoevolve.providers.python import PythonModel
from pytest_autoevolve.providers.registry import default_registry
from pytest_autoevolve.records import NamedCheck, Scenario
from pytest_autoevolve.run.runner import ModelHandle, trial_seed

USER_AGENTS = """
CALLS = []


def plain(messages):
    CALLS.append(("plain", messages, {}))
    return "plain reply"


def wants_seed(messages, seed):
    CALLS.append(("wants_seed", messages, {"seed": seed}))
    return f"seed={seed}"


def wants_all(messages, *, scenario, seed, repeat):
    CALLS.append(("wants_all", messages, {"scenario": scenario, "seed": seed, "repeat": repeat}))
    return f"{scenario.id}/{seed}/{repeat}"


def wants_repeat_and_more(messages, repeat, temperature=0.5):
    CALLS.append(("wants_repeat_and_more", messages, {"repeat": repeat, "temperature": temperature}))
    return "ok"


def takes_kwargs(messages, **kwargs):
    CALLS.append(("takes_kwargs", messages, kwargs))
    return ",".join(sorted(kwargs))


def mapping(messages, scenario):
    return {
        "output": "46",
        "messages": [*messages, {"role": "tool", "content": "calc: 46"}, {"role": "assistant", "content": "46"}],
        "tool_calls": [{"name": "calc", "arguments": {"expr": "12+34"}, "result": 46}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 2},
        "cost": 0.003,
    }


def output_only(messages):
    return {"output": "46"}


def returns_int(messages):
    return 46


def returns_bad_mapping(messages):
    return {"text": "46"}


def raises(messages):
    raise ValueError("agent fell over")


class Agent:
    def __call__(self, messages, seed):
        return f"callable object, seed {seed}"


agent_object = Agent()
NOT_CALLABLE = 3
"""


_MODULE_NUMBERS = itertools.count()


@pytest.fixture
def user_agents(tmp_path, monkeypatch):
    """A module of user agents in ``tmp_path`` (unique name), importable via the project root."""
    name = f"user_agents_{next(_MODULE_NUMBERS)}"
    (tmp_path / f"{name}.py").write_text(USER_AGENTS, encoding="utf-8")
    yield name, tmp_path
    monkeypatch.delitem(sys.modules, name, raising=False)


def make_scenario(scenario_id: str = "add-2-digit", expected: str = "46") -> Scenario:
    return Scenario(
        id=scenario_id,
        messages=({"role": "user", "content": "add 12+34="},),
        graders=(NamedCheck("equals", expected, equals(expected, Path("."))),),
        path="scenarios/demo.yaml",
        expected=expected,
    )


def python_model(user_agents: tuple[str, Path], function: str) -> PythonModel:
    name, root = user_agents
    return PythonModel(parse_spec(f"python:{name}:{function}"), root)


def calls(model: PythonModel) -> list[tuple[str, list, dict]]:
    return sys.modules[model.function.__module__].CALLS


# --- parse_spec -----------------------------------------------------------------------------------


def test_tiny_is_a_bare_provider():
    spec = parse_spec("tiny")
    assert spec == ModelSpec("tiny", "", {})
    assert spec.display == "tiny"


def test_hf_path_with_adapter():
    spec = parse_spec("hf:./out/merged+adapter=./out/lora")
    assert (spec.provider, spec.target) == ("hf", "./out/merged")
    assert dict(spec.params) == {"adapter": "./out/lora"}
    assert spec.display == "hf:./out/merged+adapter=./out/lora"


def test_hf_hub_id():
    spec = parse_spec("hf:HuggingFaceTB/SmolLM2-135M-Instruct")
    assert (spec.provider, spec.target, dict(spec.params)) == ("hf", "HuggingFaceTB/SmolLM2-135M-Instruct", {})


def test_python_target_keeps_module_and_function():
    spec = parse_spec("python:mypkg.agents:run_agent")
    assert (spec.provider, spec.target) == ("python", "mypkg.agents:run_agent")


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("temperature=0.7", 0.7),
        ("max_new_tokens=32", 32),
        ("do_sample=true", True),
        ("do_sample=false", False),
        ("stop=null", None),
        ("adapter=./lora", "./lora"),
        ("system_prompt=be brief", "be brief"),
        ("empty=", ""),
        ("quoted='42'", "42"),
    ],
)
def test_options_are_typed_as_yaml_scalars(option, value):
    spec = parse_spec(f"tiny+{option}")
    key = option.partition("=")[0]
    assert spec.params[key] == value
    assert type(spec.params[key]) is type(value)


def test_option_text_that_is_no_yaml_scalar_stays_text():
    spec = parse_spec("tiny+system_prompt=Answer: one word+stop=[")
    assert spec.params["system_prompt"] == "Answer: one word"
    assert spec.params["stop"] == "["


def test_several_options_in_order():
    spec = parse_spec("hf:./m+adapter=./lora+temperature=0+max_new_tokens=8")
    assert list(spec.params) == ["adapter", "temperature", "max_new_tokens"]
    assert spec.display == "hf:./m+adapter=./lora+temperature=0+max_new_tokens=8"


def test_named_model_string():
    named = {"fast": "tiny+temperature=0", "mine": "python:toyagents:echo"}
    assert parse_spec("fast", named) == ModelSpec("tiny", "", {"temperature": 0})
    assert parse_spec("mine", named) == ModelSpec("python", "toyagents:echo", {})


def test_named_model_mapping_carries_generation_parameters():
    named = {"brief": {"spec": "python:toyagents:echo", "system_prompt": "be brief", "temperature": 0.2}}
    spec = parse_spec("brief", named)
    assert (spec.provider, spec.target) == ("python", "toyagents:echo")
    assert dict(spec.params) == {"system_prompt": "be brief", "temperature": 0.2}


def test_mapping_overrides_options_of_its_spec_string():
    spec = parse_spec({"spec": "tiny+temperature=0.7+top_p=0.9", "temperature": 0.1})
    assert dict(spec.params) == {"temperature": 0.1, "top_p": 0.9}


def test_mapping_spec_may_name_another_named_model():
    named = {"base": "hf:./m+adapter=./lora", "warm": {"spec": "base", "temperature": 1.0}}
    spec = parse_spec("warm", named)
    assert (spec.provider, spec.target) == ("hf", "./m")
    assert dict(spec.params) == {"adapter": "./lora", "temperature": 1.0}


def test_mapping_is_not_mutated():
    mapping = {"spec": "tiny", "temperature": 0.3}
    parse_spec(mapping)
    assert mapping == {"spec": "tiny", "temperature": 0.3}


def test_named_cycle_terminates():
    spec = parse_spec("a", {"a": "b", "b": "a"})
    assert spec.provider == "a"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "non-empty string"),
        ("   ", "non-empty string"),
        (None, "non-empty string"),
        (42, "non-empty string"),
        ({"temperature": 0.1}, "needs a 'spec' key"),
        ("tiny+temperature", "not key=value"),
        ("tiny+=3", "not key=value"),
        ("hf:./m+adapter", "not key=value"),
        (":toyagents:echo", "names no provider"),
        ("+temperature=1", "names no provider"),
    ],
)
def test_bad_specs_raise_model_spec_error(spec, message):
    with pytest.raises(ModelSpecError, match=message):
        parse_spec(spec)


def test_model_spec_error_is_a_value_error():
    assert issubclass(ModelSpecError, ValueError)


@pytest.mark.parametrize(
    "secret",
    [
        "api_key=SECRET",
        "OPENAI_API_KEY=SECRET",
        "token=SECRET",
        "access_token=SECRET",
        "password=SECRET",
        "client_secret=SECRET",
        "authorization=SECRET",
    ],
)
def test_display_removes_secrets(secret):
    spec = parse_spec(f"python:toyagents:echo+{secret}+temperature=0.5")
    assert "SECRET" in str(dict(spec.params).values())
    assert "SECRET" not in spec.display
    assert spec.display == "python:toyagents:echo+temperature=0.5"


@pytest.mark.parametrize("option", ["max_new_tokens=8", "max_tokens=8", "top_k=5", "temperature=0"])
def test_display_keeps_generation_parameters(option):
    assert parse_spec(f"tiny+{option}").display == f"tiny+{option}"


def test_display_removes_run_together_secret_names():
    assert parse_spec("tiny+apikey=SECRET+authToken=SECRET").display == "tiny"


def test_display_removes_secrets_of_named_mapping():
    spec = parse_spec("remote", {"remote": {"spec": "python:toyagents:echo", "api_key": "sk-123", "top_p": 0.9}})
    assert spec.display == "python:toyagents:echo+top_p=0.9"


# --- providers ------------------------------------------------------------------------------------


def test_registry_knows_builtins_and_rejects_unknown(tmp_path):
    registry = default_registry()
    assert {"python", "hf", "tiny"} <= set(registry.names())
    with pytest.raises(ModelSpecError, match="unknown model provider 'nope'"):
        registry.create(parse_spec("nope:x"), tmp_path)


def test_registry_register_adds_provider(tmp_path):
    registry = default_registry()

    class Fixed:
        def __init__(self, spec, root):
            self.spec = spec.display

        def generate(self, messages, *, scenario, seed, repeat):
            return Reply("fixed")

    registry.register("fixed", Fixed)
    model = registry.create(parse_spec("fixed:x+api_key=k"), tmp_path)
    assert model.spec == "fixed:x"
    assert "fixed" in registry.names()


def test_python_model_spec_has_no_secrets(user_agents):
    name, root = user_agents
    model = PythonModel(parse_spec(f"python:{name}:plain+api_key=SECRET"), root)
    assert model.spec == f"python:{name}:plain"


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("plain_name", "python:package.module:function"),
        ("no_such_module_xyz:fn", "cannot be imported"),
        ("{module}:missing_function", "cannot be imported"),
        ("{module}:NOT_CALLABLE", "not callable"),
    ],
)
def test_python_model_bad_targets(user_agents, target, message):
    name, root = user_agents
    with pytest.raises(ModelSpecError, match=message):
        PythonModel(parse_spec(f"python:{target.format(module=name)}"), root)


# --- the python: calling convention ---------------------------------------------------------------


def test_only_messages_when_nothing_else_is_declared(user_agents):
    model = python_model(user_agents, "plain")
    messages = [{"role": "user", "content": "hi"}]
    reply = model.generate(ModelRequest.for_trial(messages, make_scenario(), 7, 1))
    assert reply == Reply(output="plain reply")
    assert calls(model) == [("plain", messages, {})]


def test_declared_seed_only(user_agents):
    model = python_model(user_agents, "wants_seed")
    reply = model.generate(ModelRequest.for_trial([{"role": "user", "content": "hi"}], make_scenario(), 7, 1))
    assert reply.output == "seed=7"
    assert calls(model)[-1][2] == {"seed": 7}


def test_declared_keyword_only_parameters(user_agents):
    model = python_model(user_agents, "wants_all")
    scenario = make_scenario("s-1")
    reply = model.generate(ModelRequest.for_trial([{"role": "user", "content": "hi"}], scenario, 5, 2))
    assert reply.output == "s-1/5/2"
    assert calls(model)[-1][2] == {"scenario": scenario, "seed": 5, "repeat": 2}


def test_other_parameters_keep_their_defaults(user_agents):
    model = python_model(user_agents, "wants_repeat_and_more")
    model.generate(ModelRequest.for_trial([{"role": "user", "content": "hi"}], make_scenario(), 5, 3))
    assert calls(model)[-1][2] == {"repeat": 3, "temperature": 0.5}


def test_var_keyword_gets_everything(user_agents):
    model = python_model(user_agents, "takes_kwargs")
    scenario = make_scenario()
    reply = model.generate(ModelRequest.for_trial([{"role": "user", "content": "hi"}], scenario, 1, 0))
    assert reply.output == "repeat,scenario,seed"
    assert calls(model)[-1][2] == {"scenario": scenario, "seed": 1, "repeat": 0}


def test_callable_object(user_agents):
    model = python_model(user_agents, "agent_object")
    reply = model.generate(ModelRequest.for_trial([{"role": "user", "content": "hi"}], make_scenario(), 9, 0))
    assert reply.output == "callable object, seed 9"


def test_messages_are_the_first_argument(user_agents):
    model = python_model(user_agents, "plain")
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "add 12+34="}]
    model.generate(ModelRequest.for_trial(messages, make_scenario(), 0, 0))
    assert calls(model)[-1][1] == messages


def test_mapping_reply_with_extras(user_agents):
    model = python_model(user_agents, "mapping")
    reply = model.generate(ModelRequest.for_trial([{"role": "user", "content": "add 12+34="}], make_scenario(), 0, 0))
    assert reply.output == "46"
    assert reply.messages is not None and [m["role"] for m in reply.messages] == ["user", "tool", "assistant"]
    assert reply.tool_calls == [{"name": "calc", "arguments": {"expr": "12+34"}, "result": 46}]
    assert (reply.prompt_tokens, reply.completion_tokens, reply.cost) == (11, 2, 0.003)


def test_mapping_reply_with_output_only(user_agents):
    model = python_model(user_agents, "output_only")
    reply = model.generate(ModelRequest.for_trial([{"role": "user", "content": "x"}], make_scenario(), 0, 0))
    assert reply == Reply(output="46")


@pytest.mark.parametrize("result", [46, None, ["46"], {"text": "46"}, {"output": 46}])
def test_reply_from_rejects_other_results(result):
    with pytest.raises(TypeError, match="expected a string or a mapping with 'output'"):
        reply_from(result, "python:agents:bad")


def handle_for(user_agents, function: str, seen: list) -> ModelHandle:
    return ModelHandle(role="candidate", model=python_model(user_agents, function), base_seed=3, observe=seen.append)


def test_handle_records_mapping_reply(user_agents):
    seen: list = []
    trajectory = handle_for(user_agents, "mapping", seen).run(make_scenario(), repeat=1)
    assert seen == [trajectory]
    assert trajectory.error is None
    assert trajectory.passed is True and trajectory.score == 1.0
    assert trajectory.output == "46"
    assert trajectory.messages[-1] == {"role": "assistant", "content": "46"}
    assert trajectory.tool_calls[0]["name"] == "calc"
    assert (trajectory.prompt_tokens, trajectory.completion_tokens, trajectory.total_tokens) == (11, 2, 13)
    assert trajectory.cost == 0.003
    assert trajectory.seed == trial_seed(3, "add-2-digit", 1)
    assert trajectory.repeat == 1


def test_handle_appends_assistant_reply_to_messages(user_agents):
    trajectory = handle_for(user_agents, "output_only", []).run(make_scenario())
    assert trajectory.messages == [
        {"role": "user", "content": "add 12+34="},
        {"role": "assistant", "content": "46"},
    ]
    assert trajectory.total_tokens is None


@pytest.mark.parametrize(
    ("function", "error"),
    [
        ("returns_int", "TypeError: python:{module}:returns_int returned int"),
        ("returns_bad_mapping", "TypeError: python:{module}:returns_bad_mapping returned dict"),
        ("raises", "ValueError: agent fell over"),
    ],
)
def test_bad_result_or_exception_is_recorded_not_raised(user_agents, function, error):
    seen: list = []
    trajectory = handle_for(user_agents, function, seen).run(make_scenario())
    assert seen == [trajectory]
    assert trajectory.error is not None
    assert trajectory.error.startswith(error.format(module=user_agents[0]))
    assert trajectory.passed is False
    assert trajectory.grades == []
    assert trajectory.started_at and trajectory.finished_at >= trajectory.started_at


# --- trial seeds ----------------------------------------------------------------------------------


def test_trial_seed_is_deterministic():
    assert trial_seed(0, "add-2-digit", 0) == trial_seed(0, "add-2-digit", 0)


def test_trial_seed_depends_on_base_scenario_and_repeat():
    seeds = {
        trial_seed(base, scenario, repeat)
        for base, scenario, repeat in itertools.product([0, 1, 12345], ["a", "b", "add-2-digit"], range(5))
    }
    assert len(seeds) == 3 * 3 * 5


def test_trial_seed_fields_do_not_run_together():
    assert trial_seed(1, "1", 0) != trial_seed(11, "", 0)
    assert trial_seed(0, "a1", 0) != trial_seed(0, "a", 10)


def test_trial_seed_is_a_31_bit_non_negative_int():
    for repeat in range(200):
        seed = trial_seed(-5, "s", repeat)
        assert isinstance(seed, int)
        assert 0 <= seed < 2**31


def test_trial_seed_is_stable_across_processes():
    code = "from pytest_autoevolve.run.runner import trial_seed; print(trial_seed(7, 'add-2-digit', 2))"
    results = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": hashseed, "PATH": ""},
        ).stdout.strip()
        for hashseed in ("1", "2")
    }
    assert results == {str(trial_seed(7, "add-2-digit", 2))}


def test_a_named_model_takes_parameters_on_top():
    named = {"fast": "tiny+temperature=0", "brief": {"spec": "hf:./m", "system_prompt": "x", "temperature": 0.2}}
    assert parse_spec("fast+temperature=1.0", named) == ModelSpec("tiny", "", {"temperature": 1.0})
    assert parse_spec("brief+temperature=0.9", named) == ModelSpec(
        "hf", "./m", {"system_prompt": "x", "temperature": 0.9}
    )

#!/usr/bin/env python3
"""Runs the OFFICIAL EQ-Bench 3 harness code (github EQ-bench/eqbench3 at 3c21bcc) on a fixed,
synthetic set of inputs and writes what it computes to tests/goldens/eqbench3/official.json, which
tests/eval/test_eqbench3_goldens.cpp compares Kindred's port against.

What is exercised, each through the harness's own functions (nothing re-implemented here except
the few lines of glue that call them the way the harness does):
  * parse_scenario_prompts and load_scenario_notes on ../shared/eqbench3;
  * ScenarioTask.run_scenario / run_debrief with a scripted tested model: the messages it sends
    (master prompts, canned turns, the debrief) and the generation settings of each call;
  * _execute_rubric_scoring_task with a scripted judge: the rubric prompt it sends, and
    _parse_rubric_scores + calculate_final_rubric_score on ~40 synthetic judge answers (missing
    criteria, out-of-range values, numbers as strings, booleans, fences, repairable and
    unrepairable JSON, <think> blocks);
  * do_pairwise_judge with a scripted judge: the pairwise prompt (standard and analysis), and
    interpret_pairwise_result / downscale_analysis_pair / compute_fraction_for_test on synthetic
    pairwise answers in both orders;
  * bin_fraction, _fraction_from_plus, solve_with_trueskill (bin 20 and 5) and
    normalize_elo_scores on a synthetic comparison list.

Usage (the harness is not vendored; fetch it and point --harness at a checkout):
  .venv/bin/python tools/goldens/eqbench3_official.py --harness /path/to/eqbench3 \
      --data ../shared/eqbench3 --out tests/goldens/eqbench3/official.json
Needs requests, tqdm, trueskill (the dev venv has them); python-dotenv is stubbed.
"""
import argparse
import json
import math
import os
import random
import sys
import tempfile
import types


def load_harness(harness, data):
    # utils/api.py imports dotenv at import time; the scripted clients never read the environment.
    sys.modules["dotenv"] = types.SimpleNamespace(load_dotenv=lambda *a, **k: None)
    sys.path.insert(0, harness)
    # The harness opens data/... relative to the working directory.
    work = tempfile.mkdtemp(prefix="eqbench3-golden-")
    os.symlink(os.path.abspath(data), os.path.join(work, "data"))
    os.chdir(work)
    import core.benchmark as benchmark
    import core.conversation as conversation
    import core.elo_helpers as elo_helpers
    import core.pairwise_judging as pairwise
    import core.trueskill_solver as solver
    import utils.utils as utils
    import utils.constants as constants
    return types.SimpleNamespace(benchmark=benchmark, conversation=conversation, elo_helpers=elo_helpers,
                                 pairwise=pairwise, solver=solver, utils=utils, constants=constants)


class ScriptedClient:
    """Stands in for utils.api.APIClient: records each call and answers from a script. The
    <think> stripping of APIClient.generate is applied as the real client would."""

    def __init__(self, replies):
        self.replies = list(replies)
        self.calls = []

    def generate(self, model, messages, temperature=0.7, max_tokens=4000, min_p=0.1):
        self.calls.append({"messages": [dict(m) for m in messages], "temperature": temperature,
                           "max_tokens": max_tokens, "min_p": min_p})
        content = self.replies.pop(0)
        if '<think>' in content and "</think>" in content:
            content = content[content.find('</think>') + len("</think>"):].strip()
        if '<reasoning>' in content and "</reasoning>" in content:
            content = content[content.find('</reasoning>') + len("</reasoning>"):].strip()
        return content


def role_play_reply(rng, turn, curly=False, missing_third=False):
    apostrophe = "\u2019" if curly else "'"
    words = " ".join(rng.choice(["calm", "*angry*", "hurt", "#tired", "hopeful", "wary", "sad", "torn"]) for _ in range(40))
    reply = (f"# I{apostrophe}m thinking & feeling\n{words} turn {turn}.\n\n"
             f"#They{apostrophe}re thinking & feeling\n   They feel {words[:60]}.\n\n")
    if not missing_third:
        reply += f"# my response\nI hear you. {words[:120]}\n--\ntrailing notes after the separator"
    return reply


def drafting_reply(rng, turn):
    words = " ".join(rng.choice(["she", "worries", "about", "**status**", "and", "pride"]) for _ in range(600))
    return (f"# Perspective-taking\n{words}\n# Draft brainstorming\nOptions: {words[:300]}\n"
            f"# Draft\nHey, {words[:1900]}\n-- end")


def analysis_reply(rng):
    return "<think>private reasoning</think>\n" + " ".join(rng.choice(["attachment", "*shame*", "#defence", "bid"]) for _ in range(1000))


def rubric_answers(rng, standard, analysis):
    """Synthetic rubric judge answers: (scenario id, text)."""
    answers = []

    def scores(criteria, low=0, high=20):
        return {c: rng.randint(low, high) for c in criteria}

    for i in range(12):
        sid = rng.choice(["1", "208", "401", "9"])
        criteria = analysis if sid == "401" else standard
        body = {"chain_of_thought_reasoning": f"case {i}: \"quoted\" reasoning"}
        body.update(scores(criteria))
        answers.append((sid, json.dumps(body, indent=rng.choice([None, 2]))))
    std_body = {"chain_of_thought_reasoning": "r"}
    std_body.update(scores(standard))
    plain = json.dumps(std_body)
    answers += [
        ("1", "Here you go:\n```json\n" + plain + "\n```\nThanks."),
        ("1", "```json\n{\"demonstrated_empathy\": 1}\n```\nrevised:\n```json\n" + plain + "\n```"),
        ("1", plain.replace('"depth_of_insight": ', '"depth_of_insight": "15/20 because" , "x": ').replace('"x": ', '"ignored_text": ')),
        ("1", '{"demonstrated_empathy": "about 12.5 points", "pragmatic_ei": "score: -3", "depth_of_insight": "n/a",'
              ' "social_dexterity": "7x", "emotional_reasoning": "x7 9", "message_tailoring": 14}'),
        ("1", '{"demonstrated_empathy": 25, "pragmatic_ei": -4, "depth_of_insight": 20.5, "social_dexterity": 0,'
              ' "emotional_reasoning": 100, "message_tailoring": 3}'),
        ("1", '{"demonstrated_empathy": true, "pragmatic_ei": false, "depth_of_insight": 12, "warmth": 19}'),
        ("1", '{"chain_of_thought_reasoning": "only reasoning", "boundary_setting": 4, "warmth": 20}'),
        ("1", '{"chain_of_thought_reasoning": 17, "demonstrated_empathy": 11}'),
        ("1", '{"demonstrated_empathy": [12, 3], "pragmatic_ei": {"a": 9}, "depth_of_insight": null,'
              ' "social_dexterity": [1e-05, 2], "emotional_reasoning": 1e3, "message_tailoring": 2.5e1}'),
        ("1", '{"chain_of_thought_reasoning": "line one\nline two", "demonstrated_empathy": 13, "pragmatic_ei": 12}'),
        ("1", '{"chain_of_thought_reasoning": "she said "no" twice", "demonstrated_empathy": 9, "pragmatic_ei": 8}'),
        ("1", '{"demonstrated_empathy": 10, "demonstrated_empathy": 16, "pragmatic_ei": 11}'),
        ("1", '{"demonstrated_empathy": 10, "pragmatic_ei": 11,}'),
        ("1", "I cannot score this transcript."),
        ("1", "{}"),
        ("1", "[1, 2, 3]"),
        ("1", '{"demonstrated_empathy": "twelve", "pragmatic_ei": "high"}'),
        ("1", '} stray brace first {"demonstrated_empathy": 14}'),
        ("1", 'He said "{ not json" then {"demonstrated_empathy": 14, "pragmatic_ei": 6}'),
        ("1", '{"a": {"b": {"c": 1}}, "demonstrated_empathy": 8}'),
        ("1", '{"demonstrated_empathy": 1' + "0" * 400 + '}'),
        ("1", '{"demonstrated_empathy": 1e400, "pragmatic_ei": 5}'),
        ("1", '{"demonstrated_empathy": NaN, "pragmatic_ei": 5}'),
        ("1", '{"demonstrated_empathy": 12 "pragmatic_ei": 5}'),
        ("1", '{"demonstrated_empathy": 12, "pragmatic_ei": 5'),
        ("1", '\u00a0\u2003 {"demonstrated_empathy": 7,\u2028 "pragmatic_ei": 3}\u3000'),
        ("1", '{"demonstrated_empathy": "\u0663\u0664 (Arabic-Indic) then 15"}'),
        ("1", '{"demonstrated_empathy": "score\u201315", "pragmatic_ei": "r\u00e9sum\u00e9 14"}'),
        ("1", '{"caf\u00e9": 1, "demonstrated_empathy": 0.1, "pragmatic_ei": 19.99, "depth_of_insight": 1.005}'),
        ("401", '{"depth_of_insight": 15, "emotional_reasoning": 14, "theory_of_mind": 16, "subtext_identification": 13,'
                ' "intellectual_grounding": 12, "correctness": 17, "demonstrated_empathy": 20}'),
        ("401", '{"depth_of_insight": 15, "correctness": "11"}'),
        ("208", '<think>{"demonstrated_empathy": 1}</think>{"demonstrated_empathy": 17, "message_tailoring": 12}'),
    ]
    return answers


def pairwise_answers(rng, standard_keys, analysis_keys):
    answers = []
    for i in range(10):
        keys = analysis_keys if i % 3 == 0 else standard_keys
        body = {"chain_of_thought_reasoning": "A0493 was better, +++ everywhere"}
        for k in keys:
            body[k] = rng.choice(["A0493", "A0488"]) + "+" * rng.randint(1, 5)
        answers.append(("404" if i % 3 == 0 else "1", json.dumps(body)))
    answers += [
        ("1", '{"demonstrated_empathy": "A0493++", "pragmatic_ei": "A0488++", "overall_eq": "A0493+ and A0488+++"}'),
        ("1", '{"demonstrated_empathy": "A0493+", "pragmatic_ei": "A0488+", "depth_of_insight": "tie"}'),
        ("1", '{"demonstrated_empathy": "A0488+++++", "pragmatic_ei": 5, "depth_of_insight": ["A0493+++"]}'),
        ("1", '```json\n{"demonstrated_empathy": "A0493++++", "social_dexterity": "a0493++"}\n```'),
        ("1", "no json here"),
        ("1", "{}"),
        ("401", '{"depth_of_insight": "A0488+", "correctness": "A0488+++++", "overall_eq": "A0493++"}'),
        ("401", '{"depth_of_insight": "A0493+", "correctness": "A0488+"}'),
        ("1", '{"chain_of_thought_reasoning": "A0493+++++ A0493+++++", "demonstrated_empathy": "A0488+"}'),
        ("1", "{" + ", ".join(f'"k{i}": "A0493+++++"' for i in range(9)) + "}"),
    ]
    return answers


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--harness", required=True, help="checkout of github EQ-bench/eqbench3 (3c21bcc)")
    parser.add_argument("--data", required=True, help="the benchmark's data files (../shared/eqbench3)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    out_path = os.path.abspath(args.out)
    h = load_harness(os.path.abspath(args.harness), args.data)
    C = h.constants
    rng = random.Random(20250604)
    golden = {"harness_commit": "3c21bcc"}

    # --- scenarios and notes ---------------------------------------------------------------
    scenarios = h.benchmark.parse_scenario_prompts(C.STANDARD_SCENARIO_PROMPTS_FILE)
    golden["scenarios"] = [{"id": sid, "prompts": len(p), "chars": [len(x) for x in p],
                            "heads": [x[:60] for x in p], "tails": [x[-60:] for x in p]} for sid, p in scenarios.items()]
    notes = h.elo_helpers.load_scenario_notes(C.STANDARD_SCENARIO_NOTES_FILE)
    golden["notes"] = {k: {"chars": len(v), "head": v[:60], "tail": v[-60:]} for k, v in notes.items()}

    # --- transcripts through the real task code with scripted clients ----------------------
    master = {k: open(f, encoding="utf-8").read() for k, f in [
        ("standard", C.STANDARD_MASTER_PROMPT_FILE), ("drafting", C.MESSAGE_DRAFTING_MASTER_PROMPT_FILE),
        ("analysis", C.ANALYSIS_MASTER_PROMPT_FILE)]}
    debrief_prompt = open(C.STANDARD_DEBRIEF_PROMPT_FILE, encoding="utf-8").read()
    std_criteria = [l.strip() for l in open(C.STANDARD_RUBRIC_CRITERIA_FILE) if l.strip() and not l.strip().startswith('#')]
    anl_criteria = [l.strip() for l in open(C.ANALYSIS_RUBRIC_CRITERIA_FILE) if l.strip() and not l.strip().startswith('#')]

    def output_format(criteria):
        d = {"chain_of_thought_reasoning": "detailed chain of thought reasoning about the coming scoring decisions"}
        for c in criteria:
            d[c] = 0
        return json.dumps(d, indent=2).replace(': 0', ': 0-20')

    rubric_templates = {False: open(C.STANDARD_RUBRIC_PROMPT_FILE, encoding="utf-8").read(),
                        True: open(C.ANALYSIS_RUBRIC_PROMPT_FILE, encoding="utf-8").read()}
    tasks = []
    for sid, variant in [("1", "a"), ("1", "b"), ("208", "a"), ("208", "b"), ("401", "a"), ("401", "b")]:
        kind = "analysis" if sid in C.ANALYSIS_SCENARIO_IDS else "drafting" if sid in C.MESSAGE_DRAFTING_SCENARIO_IDS else "standard"
        prompts = scenarios[sid]
        if kind == "analysis":
            replies = [analysis_reply(rng) for _ in prompts]
        elif kind == "drafting":
            replies = [drafting_reply(rng, t) for t in range(len(prompts))]
        else:
            replies = [role_play_reply(rng, t, curly=(variant == "b"), missing_third=(t == 1)) for t in range(len(prompts))]
        debrief = "  Debrief: *what went poorly* ## and why " + "x" * (4100 if variant == "b" else 10) + "  "
        task = h.conversation.ScenarioTask(sid, prompts, None if kind == "analysis" else debrief_prompt, 1,
                                           f"model-{variant}", master[kind])
        test = ScriptedClient(replies + ([] if kind == "analysis" else [debrief]))
        task.run_scenario({"test": test}, None, None, "api-model")
        task.run_debrief({"test": test}, None, None, "api-model")
        judge = ScriptedClient(['{"demonstrated_empathy": 10}'])
        h.benchmark._execute_rubric_scoring_task(task, {"judge": judge}, "judge-model", rubric_templates[kind == "analysis"],
                                                 output_format(anl_criteria if kind == "analysis" else std_criteria), None, "k", False)
        tasks.append({"scenario": sid, "variant": variant, "replies": replies,
                      "debrief_reply": None if kind == "analysis" else debrief,
                      # each call's new (last) message and settings; the history before it is the conversation
                      "calls": [{"messages": len(c["messages"]), "last": c["messages"][-1]["content"],
                                 "temperature": c["temperature"], "max_tokens": c["max_tokens"], "min_p": c["min_p"]}
                                for c in test.calls],
                      "conversation": task.conversation_history,
                      "parsed": task.parsed_responses, "debrief": task.debrief_response,
                      "rubric_prompt": judge.calls[0]["messages"][0]["content"],
                      "rubric_call": {k: judge.calls[0][k] for k in ("temperature", "max_tokens", "min_p")},
                      "_task": task})
    h.elo_config = sys.modules["core.elo_config"]
    h.elo_config.scenario_notes.update(notes)
    h.elo_config.analysis_scenario_notes.update(notes)
    pair_templates = {False: open(C.STANDARD_PAIRWISE_PROMPT_FILE, encoding="utf-8").read(),
                      True: open(C.ANALYSIS_PAIRWISE_PROMPT_FILE, encoding="utf-8").read()}
    golden["pairwise_prompts"] = []
    for i in range(0, 6, 2):
        a, b = tasks[i]["_task"], tasks[i + 1]["_task"]
        judge = ScriptedClient(['{"x": "A0493+"}'])
        h.pairwise.do_pairwise_judge(a.scenario_id, scenarios[a.scenario_id][0], a.conversation_history, a.debrief_response,
                                     b.conversation_history, b.debrief_response, pair_templates[a.scenario_id in C.ANALYSIS_SCENARIO_IDS],
                                     "judge-model", {"judge": judge}, a.parsed_responses, b.parsed_responses)
        golden["pairwise_prompts"].append({"scenario": a.scenario_id, "a": i, "b": i + 1,
                                           "prompt": judge.calls[0]["messages"][0]["content"],
                                           "call": {k: judge.calls[0][k] for k in ("temperature", "max_tokens", "min_p")}})
    for t in tasks:
        del t["_task"]
    golden["tasks"] = tasks

    # --- section parsing on odd replies --------------------------------------------------------
    odd = ["#I'm thinking & feeling\nA\n#They're thinking & feeling\nB\n#My response\nC",
           "# I\u2019M THINKING & FEELING   \n\n  deep  \n# they're Thinking & Feeling\nshallow\n# My Response\nreply -- cut",
           "no sections at all", "# My response\nonly a response\n# I'm thinking & feeling\nlate thoughts",
           "# My response no newline", "# Perspective taking\nP\n# Draft brainstorming\nB # inline\n# Draft\nD--X",
           "# Perspective-taking\r\nP\r\n# Draft\nonly draft"]
    golden["sections"] = []
    for sid in ["1", "208"]:
        task = h.conversation.ScenarioTask(sid, ["p"], "d", 1, "m", "{scenario_prompt}")
        for reply in odd:
            golden["sections"].append({"scenario": sid, "reply": reply, "parsed": task._parse_response(reply)})

    # --- rubric parsing and aggregation ---------------------------------------------------------
    recorded = []
    real_mean = h.benchmark.statistics.mean

    def recording_mean(values):
        result = real_mean(values)
        recorded.append(result)
        return result

    h.benchmark.statistics.mean = recording_mean
    golden["rubric"] = []
    run_tasks = {}
    for index, (sid, text) in enumerate(rubric_answers(rng, std_criteria, anl_criteria)):
        stripped = ScriptedClient([text]).generate("j", [])
        scores = h.conversation.ScenarioTask._parse_rubric_scores(stripped.strip())
        entry = {"scenario": sid, "text": text, "scores": scores, "task_score": None}
        if scores is not None:
            recorded.clear()
            h.benchmark.calculate_final_rubric_score({"scenario_tasks": {"1": {sid: {"status": "rubric_scored", "rubric_scores": scores}}}})
            entry["task_score"] = recorded[0] if len(recorded) == 2 else None
            # Kindred refuses NaN/Infinity scores (they would make the run's score NaN): left out of
            # the run-level golden, and checked as unparseable on Kindred's side.
            entry["non_finite"] = any(isinstance(v, float) and not math.isfinite(v) for v in scores.values())
            if not entry["non_finite"]:
                run_tasks.setdefault(str(index), {})[sid] = {"status": "rubric_scored", "rubric_scores": scores}
        if entry.get("non_finite"):  # JSON has no NaN/Infinity: written as Python prints them
            entry["scores"] = {k: v if math.isfinite(v) else repr(v) for k, v in scores.items()}
            entry["task_score"] = repr(entry["task_score"])
        golden["rubric"].append(entry)
    h.benchmark.statistics.mean = real_mean
    # The run's score over every parseable answer (one "iteration" per answer keeps them apart).
    score, error = h.benchmark.calculate_final_rubric_score({"scenario_tasks": run_tasks})
    golden["rubric_score_0_20"] = score
    golden["rubric_score_0_100"] = score * 5.0

    # --- pairwise interpretation, both orders ---------------------------------------------------
    std_keys = ["demonstrated_empathy", "pragmatic_ei", "depth_of_insight", "social_dexterity", "emotional_reasoning",
                "appropriate_validating_challenging", "message_tailoring", "overall_eq"]
    anl_keys = ["depth_of_insight", "authentic_eu", "causal_attribution", "theory_of_mind", "incisiveness",
                "reading_between_lines", "correctness", "overall_eq"]
    golden["pairwise"] = []
    for sid, text in pairwise_answers(rng, std_keys, anl_keys):
        try:
            result = h.utils.robust_json_loads(text)
            ok = isinstance(result, dict) and bool(result)
        except Exception:
            result, ok = None, False
        entry = {"scenario": sid, "text": text, "parsed": ok}
        if ok:
            outcome_a, plus_a, plus_b = h.pairwise.interpret_pairwise_result(result)
            entry["interpret"] = [outcome_a, plus_a, plus_b]
            # forward: the test model was A0493 (as _judge_scenario_pairs_in_parallel does)
            fwd = h.elo_helpers.downscale_analysis_pair(sid, outcome_a, plus_a, plus_b)
            rev_outcome = 0.0 if outcome_a == 1.0 else 1.0 if outcome_a == 0.0 else 0.5
            rev = h.elo_helpers.downscale_analysis_pair(sid, rev_outcome, plus_b, plus_a)
            entry["forward"] = {"plus_test": fwd[0], "plus_other": fwd[1], "fraction": fwd[5]}
            entry["reversed"] = {"plus_test": rev[0], "plus_other": rev[1], "fraction": rev[5]}
        golden["pairwise"].append(entry)

    # --- binning, grouping, TrueSkill, normalisation --------------------------------------------
    golden["bins"] = [{"fraction": f, "bin": b, "wins": list(h.solver.bin_fraction(f, b))}
                      for f in [0.0, 0.01, 0.5 - 1e-10, 0.5, 0.5 + 1 / 60, 0.5 + 2 / 60, 0.55, 0.6, 0.75, 0.99, 1.0, 0.3, 0.45, 0.5125]
                      for b in (20, 5)]

    def comparisons(models, scenario_ids, seed, anchors=False):
        r = random.Random(seed)
        skill = {m: i for i, m in enumerate(models)}
        comps = []
        for i, a in enumerate(models):
            for b in models[i + 1:]:
                for sid in scenario_ids:
                    for order in ("forward", "reversed"):
                        edge = skill[a] - skill[b] + r.uniform(-2.5, 2.5)
                        plus_a = max(0, int(round(8 + edge * 3 + r.uniform(-4, 4))))
                        plus_b = max(0, int(round(8 - edge * 3 + r.uniform(-4, 4))))
                        if r.random() < 0.1:
                            plus_b = plus_a  # ties
                        outcome = 1.0 if plus_a > plus_b else 0.0 if plus_b > plus_a else 0.5
                        pt, po, _, _, _, frac = h.elo_helpers.downscale_analysis_pair(sid, outcome, plus_a, plus_b)
                        comps.append({"scenario_id": sid, "pair": {"test_model": a, "neighbor_model": b, "iteration_index": "1"},
                                      "order": "A0493:test / A0488:other" if order == "forward" else "A0493:other / A0488:test",
                                      "outcome_for_test_model": outcome, "plus_for_test": pt, "plus_for_other": po,
                                      "fraction_for_test": frac})
        if r.random() < 2:
            comps.append({"scenario_id": "1", "pair": {"test_model": models[0], "neighbor_model": models[1], "iteration_index": "1"},
                          "error": "Judge Error: No valid JSON block found"})
        r.shuffle(comps)
        return comps

    golden["solves"] = []
    for name, models, sids, seed in [
        ("three local runs", ["base", "sft", "sft+dpo"], ["1", "2", "208", "401", "404", "13"], 1),
        ("with anchors", ["meta-llama/llama-3.2-1b-instruct", "kindred-base", "kindred-sft", "o3"], ["1", "3", "9", "402"], 2),
        ("one pair, many ties", ["a", "b"], [str(i) for i in range(1, 16)], 3),
    ]:
        comps = comparisons(models, sids, seed)
        valid = [c for c in comps if "error" not in c]
        groups = {}
        for c in valid:
            m1, m2 = sorted([c["pair"]["test_model"], c["pair"]["neighbor_model"]])
            groups.setdefault((m1, m2, c["scenario_id"], str(c["pair"]["iteration_index"])), []).append(c)
        fractions = [{"model1": k[0], "model2": k[1], "scenario": k[2], "fraction": h.solver._fraction_from_plus(g, k[0], k[1])}
                     for k, g in groups.items()]
        mu, _ = h.solver.solve_with_trueskill(models, comps, {m: 1200.0 for m in models}, bin_size=20, return_sigma=True)
        _, sigma = h.solver.solve_with_trueskill(models, comps, {m: 1200.0 for m in models}, bin_size=5, return_sigma=True)
        normalised = h.solver.normalize_elo_scores(mu)
        golden["solves"].append({"name": name, "models": models, "comparisons": comps, "group_fractions": fractions,
                                 "mu": mu, "sigma": sigma, "normalised": normalised,
                                 "anchored": all(a in mu for a in ("o3", "meta-llama/llama-3.2-1b-instruct"))})

    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(golden, f, indent=1, ensure_ascii=False, allow_nan=False)
        f.write("\n")
    print(f"wrote {out_path}: {len(golden['rubric'])} rubric answers, {len(golden['pairwise'])} pairwise answers, "
          f"{len(golden['solves'])} solves, rubric score {golden['rubric_score_0_100']:.2f}")


if __name__ == "__main__":
    main()

#!/usr/bin/env node
// Reads a side_by_side.sh results folder (runs.jsonl, logs/*.{out,time}, machine.txt) and prints the markdown
// summary: per configuration the median over rounds of each round's figure (a round's figure is the median of
// the repetitions inside that process), the ratios dsk / llama.cpp, then every round's figures.
import fs from "node:fs";
import path from "node:path";

const dir = process.argv[2];
if (!dir) { console.error("usage: node summarize.mjs RESULTS_DIR"); process.exit(2); }
const median = (xs) => {
  const s = [...xs].filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const peakKb = (base) => {
  const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(fs.readFileSync(base + ".time", "utf8"));
  return m ? Number(m[1]) : NaN;
};

// One record per process: { name, round, pp, tg, rssBytes, weightBytes }
const runs = fs.readFileSync(path.join(dir, "runs.jsonl"), "utf8").trim().split("\n").filter(Boolean).map((l) => JSON.parse(l));
const records = runs.map(({ name, round, base }) => {
  const out = fs.readFileSync(base + ".out", "utf8");
  const r = { name, round, rssBytes: peakKb(base) * 1024 };
  if (name.startsWith("llama")) {
    for (const t of JSON.parse(out)) {
      const v = median(t.samples_ts);
      if (t.n_prompt > 0 && t.n_gen === 0) r.pp = v;
      if (t.n_gen > 0 && t.n_prompt === 0) r.tg = v;
      r.weightBytes = t.model_size;
      r.test = { p: t.n_prompt || r.test?.p, n: t.n_gen || r.test?.n };
    }
  } else {
    const j = JSON.parse(out.trim().split("\n").at(-1));
    Object.assign(r, { pp: j.pp_median ?? NaN, tg: j.tg_median ?? NaN, weightBytes: j.weight_bytes, dskRss: j.peak_rss_bytes });
  }
  return r;
});

// dsk-int4-int8 (dsk --quant int4 --int4-dot int8) is there when side_by_side.sh ran it (--int8-dot)
const names = ["llama-bf16", "dsk-bf16", "llama-q4_0", "dsk-int4", "dsk-int4-int8"].filter((x) => records.some((r) => r.name === x));
const label = {
  "llama-bf16": "llama.cpp BF16", "dsk-bf16": "dsk bf16", "llama-q4_0": "llama.cpp Q4_0", "dsk-int4": "dsk int4",
  "dsk-int4-int8": "dsk int4, int8 dot",
};
const agg = {};
for (const n of names) {
  const rs = records.filter((r) => r.name === n);
  agg[n] = {
    rounds: rs.length,
    pp: median(rs.map((r) => r.pp)), tg: median(rs.map((r) => r.tg)),
    rss: median(rs.map((r) => r.rssBytes)), weights: median(rs.map((r) => r.weightBytes)),
  };
}
const firstLlama = records.find((r) => r.name.startsWith("llama"));
const p = firstLlama?.test?.p ?? "?", n = firstLlama?.test?.n ?? "?";
const f = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : "n/a");
const mb = (x) => f(x / 1e6, 1);
const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? (a / b).toFixed(2) + "x" : "n/a");

const lines = [];
lines.push("## dsk against llama.cpp (CPU, same random Llama weights)", "");
for (const l of fs.readFileSync(path.join(dir, "machine.txt"), "utf8").trim().split("\n")) lines.push(`- ${l}`);
lines.push("", `Medians over rounds (each round: the median of the repetitions in one process); ratio = dsk / llama.cpp.`, "");
const L = agg["llama-bf16"], D = agg["dsk-bf16"], Q = agg["llama-q4_0"], I = agg["dsk-int4"], J = agg["dsk-int4-int8"];
// cells of the optional int8-dot column pair (value, ratio against Q4_0)
const j = (value, ratioText) => (J ? ` ${value} | ${ratioText} |` : "");
lines.push("| | llama.cpp BF16 | dsk bf16 | ratio | llama.cpp Q4_0 | dsk int4 | ratio |" + (J ? " dsk int4, int8 dot | ratio |" : ""));
lines.push("|---|---:|---:|---:|---:|---:|---:|" + (J ? "---:|---:|" : ""));
lines.push(`| pp${p} tokens/s | ${f(L.pp)} | ${f(D.pp)} | ${ratio(D.pp, L.pp)} | ${f(Q.pp)} | ${f(I.pp)} | ${ratio(I.pp, Q.pp)} |` + j(f(J?.pp), ratio(J?.pp, Q.pp)));
lines.push(`| tg${n} tokens/s | ${f(L.tg)} | ${f(D.tg)} | ${ratio(D.tg, L.tg)} | ${f(Q.tg)} | ${f(I.tg)} | ${ratio(I.tg, Q.tg)} |` + j(f(J?.tg), ratio(J?.tg, Q.tg)));
lines.push(`| peak RSS MB | ${mb(L.rss)} | ${mb(D.rss)} | ${ratio(D.rss, L.rss)} | ${mb(Q.rss)} | ${mb(I.rss)} | ${ratio(I.rss, Q.rss)} |` + j(mb(J?.rss), ratio(J?.rss, Q.rss)));
lines.push(`| weights MB | ${mb(L.weights)} | ${mb(D.weights)} | | ${mb(Q.weights)} | ${mb(I.weights)} | |` + j(mb(J?.weights), ""));
lines.push(`| peak RSS / weights | ${f(L.rss / L.weights, 2)} | ${f(D.rss / D.weights, 2)} | | ${f(Q.rss / Q.weights, 2)} | ${f(I.rss / I.weights, 2)} | |` + j(f(J?.rss / J?.weights, 2), ""));
lines.push(`| rounds | ${L.rounds} | ${D.rounds} | | ${Q.rounds} | ${I.rounds} | |` + j(J?.rounds, ""));
lines.push("", "Every round (pp / tg tokens/s, peak RSS MB):", "");
lines.push("| round | " + names.map((x) => label[x]).join(" | ") + " |");
lines.push("|---|" + names.map(() => "---:").join("|") + "|");
const maxRound = Math.max(...records.map((r) => r.round));
for (let round = 1; round <= maxRound; round++) {
  const cells = names.map((x) => {
    const r = records.find((q) => q.name === x && q.round === round);
    return r ? `${f(r.pp)} / ${f(r.tg)} / ${mb(r.rssBytes)}` : "";
  });
  lines.push(`| ${round} | ${cells.join(" | ")} |`);
}
console.log(lines.join("\n"));

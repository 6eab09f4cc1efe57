#!/usr/bin/env node
// Writes one deterministic random Llama twice, with the same bf16 values:
//   OUT/hf/config.json + OUT/hf/model.safetensors   (Hugging Face layout, bf16; what dsk loads)
//   OUT/model-bf16.gguf                              (GGUF v3, BF16 matrices, F32 norms; what llama.cpp loads)
// q_proj and k_proj rows are permuted in the GGUF as llama.cpp's converter does for Llama (conversion/llama.py,
// LlamaModel.permute): within each head, the rotary halves [0, d/2) and [d/2, d) are interleaved, because
// llama.cpp's rope for Llama rotates adjacent pairs where Hugging Face rotates halves. The 1-D norm weights are
// F32 in the GGUF (the converter keeps 1-D tensors in F32), holding the same bf16 values exactly.
// The tokenizer in the GGUF is a minimal SPM ("llama") vocabulary: <unk>, <s>, </s>, the 256 byte tokens and
// filler pieces up to vocab_size. The benchmarks feed ids, never text.
//
// usage: node write_model.mjs OUT [--small] [--seed N]
//   default: the 0.31B Llama (hidden 1024, 16 layers, 16 q / 4 kv heads of 64, intermediate 4096,
//   vocab 32000, untied embeddings, rope_theta 10000, rms eps 1e-5, max positions 2048)
//   --small: hidden 128, 2 layers, 4 q / 2 kv heads of 32, intermediate 256, vocab 512 (a smoke test)
// Weights: matrices and embeddings N(0, 0.02), norms N(1, 0.02); each tensor from its own seeded stream
// (seed ^ FNV-1a of its Hugging Face name), Box-Muller over xoshiro128**; bf16 by round-to-nearest-even.
import fs from "node:fs";
import path from "node:path";

const args = process.argv.slice(2);
const out = args.find((a) => !a.startsWith("--"));
if (!out || args.includes("--help")) {
  console.error("usage: node write_model.mjs OUT [--small] [--seed N]");
  process.exit(out ? 0 : 2);
}
const small = args.includes("--small");
const seedAt = args.indexOf("--seed");
const seed = seedAt >= 0 ? Number(args[seedAt + 1]) >>> 0 : 20261130;

const cfg = small
  ? { hidden: 128, layers: 2, heads: 4, kvHeads: 2, headDim: 32, inter: 256, vocab: 512 }
  : { hidden: 1024, layers: 16, heads: 16, kvHeads: 4, headDim: 64, inter: 4096, vocab: 32000 };
Object.assign(cfg, { ropeTheta: 10000, eps: 1e-5, maxPos: 2048 });

// ---- deterministic normal values --------------------------------------------------------------------------
function fnv1a(text) {
  let h = 0x811c9dc5;
  for (const c of Buffer.from(text)) h = Math.imul(h ^ c, 0x01000193) >>> 0;
  return h;
}
function xoshiro128ss(s) { // state from splitmix32 of the seed
  let z = s >>> 0;
  const next32 = () => {
    z = (z + 0x9e3779b9) >>> 0;
    let t = z;
    t = Math.imul(t ^ (t >>> 16), 0x85ebca6b) >>> 0;
    t = Math.imul(t ^ (t >>> 13), 0xc2b2ae35) >>> 0;
    return (t ^ (t >>> 16)) >>> 0;
  };
  let a = next32(), b = next32(), c = next32(), d = next32();
  return () => {
    const r = Math.imul(((Math.imul(b, 5) << 7) | (Math.imul(b, 5) >>> 25)), 9) >>> 0;
    const t = b << 9;
    c ^= a; d ^= b; b ^= c; a ^= d; c ^= t;
    d = (d << 11) | (d >>> 21);
    return r;
  };
}
function normals(name, count, mean, std) {
  const next = xoshiro128ss((seed ^ fnv1a(name)) >>> 0);
  const v = new Float32Array(count);
  for (let i = 0; i < count; i += 2) {
    const u1 = (next() + 1) / 4294967297; // (0, 1)
    const u2 = next() / 4294967296;
    const r = Math.sqrt(-2 * Math.log(u1)) * std;
    v[i] = mean + r * Math.cos(2 * Math.PI * u2);
    if (i + 1 < count) v[i + 1] = mean + r * Math.sin(2 * Math.PI * u2);
  }
  return v;
}
function toBf16(f32) { // round to nearest even; the values here are finite
  const bits = new Uint32Array(f32.buffer, f32.byteOffset, f32.length);
  const out = new Uint16Array(f32.length);
  for (let i = 0; i < bits.length; i++) {
    const b = bits[i];
    out[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
  }
  return out;
}
function bf16ToF32(bf) {
  const bits = new Uint32Array(bf.length);
  for (let i = 0; i < bf.length; i++) bits[i] = bf[i] << 16;
  return new Float32Array(bits.buffer);
}
// llama.cpp's LlamaModel.permute: rows [heads, 2, d/2] -> [heads, d/2, 2]; new row h*d + 2i + j = old row h*d + j*d/2 + i.
function permuteRows(bf, rows, cols, heads) {
  const d = rows / heads, half = d / 2;
  const out = new Uint16Array(bf.length);
  for (let h = 0; h < heads; h++)
    for (let i = 0; i < half; i++)
      for (let j = 0; j < 2; j++) {
        const from = (h * d + j * half + i) * cols, to = (h * d + 2 * i + j) * cols;
        out.set(bf.subarray(from, from + cols), to);
      }
  return out;
}

// ---- the tensors ------------------------------------------------------------------------------------------
const { hidden, layers, heads, kvHeads, headDim, inter, vocab } = cfg;
const tensors = []; // { hf, gguf, shape: [rows, cols] or [n], norm, permuteHeads }
tensors.push({ hf: "model.embed_tokens.weight", gguf: "token_embd.weight", shape: [vocab, hidden] });
for (let l = 0; l < layers; l++) {
  const p = `model.layers.${l}.`, g = `blk.${l}.`;
  tensors.push(
    { hf: p + "input_layernorm.weight", gguf: g + "attn_norm.weight", shape: [hidden], norm: true },
    { hf: p + "self_attn.q_proj.weight", gguf: g + "attn_q.weight", shape: [heads * headDim, hidden], permuteHeads: heads },
    { hf: p + "self_attn.k_proj.weight", gguf: g + "attn_k.weight", shape: [kvHeads * headDim, hidden], permuteHeads: kvHeads },
    { hf: p + "self_attn.v_proj.weight", gguf: g + "attn_v.weight", shape: [kvHeads * headDim, hidden] },
    { hf: p + "self_attn.o_proj.weight", gguf: g + "attn_output.weight", shape: [hidden, heads * headDim] },
    { hf: p + "post_attention_layernorm.weight", gguf: g + "ffn_norm.weight", shape: [hidden], norm: true },
    { hf: p + "mlp.gate_proj.weight", gguf: g + "ffn_gate.weight", shape: [inter, hidden] },
    { hf: p + "mlp.up_proj.weight", gguf: g + "ffn_up.weight", shape: [inter, hidden] },
    { hf: p + "mlp.down_proj.weight", gguf: g + "ffn_down.weight", shape: [hidden, inter] },
  );
}
tensors.push({ hf: "model.norm.weight", gguf: "output_norm.weight", shape: [hidden], norm: true });
tensors.push({ hf: "lm_head.weight", gguf: "output.weight", shape: [vocab, hidden] });
const count = (t) => t.shape.reduce((a, b) => a * b, 1);

// ---- safetensors layout -----------------------------------------------------------------------------------
let offset = 0;
const stHeader = { __metadata__: { format: "pt" } };
for (const t of tensors) {
  t.stOffset = offset;
  offset += count(t) * 2;
  stHeader[t.hf] = { dtype: "BF16", shape: t.shape, data_offsets: [t.stOffset, offset] };
}
let stJson = Buffer.from(JSON.stringify(stHeader));
stJson = Buffer.concat([stJson, Buffer.alloc((8 - (stJson.length % 8)) % 8, 0x20)]);
const stData = 8 + stJson.length;

// ---- GGUF layout ------------------------------------------------------------------------------------------
const GGUF = { U32: 4, I32: 5, F32: 6, BOOL: 7, STRING: 8, ARRAY: 9 };
const TYPE = { F32: 0, BF16: 30 };
const ALIGN = 32;
class Writer {
  constructor() { this.parts = []; }
  u32(v) { const b = Buffer.alloc(4); b.writeUInt32LE(v >>> 0); this.parts.push(b); }
  i32(v) { const b = Buffer.alloc(4); b.writeInt32LE(v); this.parts.push(b); }
  u64(v) { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); this.parts.push(b); }
  f32(v) { const b = Buffer.alloc(4); b.writeFloatLE(v); this.parts.push(b); }
  str(s) { const b = Buffer.from(s, "utf8"); this.u64(b.length); this.parts.push(b); }
  buffer() { return Buffer.concat(this.parts); }
}
const kv = [];
const put = (key, type, value, elem) => kv.push({ key, type, value, elem });
put("general.architecture", GGUF.STRING, "llama");
put("general.name", GGUF.STRING, small ? "dsk-peer-random-llama-small" : "dsk-peer-random-llama-0.31b");
put("general.alignment", GGUF.U32, ALIGN);
put("general.file_type", GGUF.U32, 32); // LLAMA_FTYPE_MOSTLY_BF16
put("llama.vocab_size", GGUF.U32, vocab);
put("llama.context_length", GGUF.U32, cfg.maxPos);
put("llama.embedding_length", GGUF.U32, hidden);
put("llama.block_count", GGUF.U32, layers);
put("llama.feed_forward_length", GGUF.U32, inter);
put("llama.attention.head_count", GGUF.U32, heads);
put("llama.attention.head_count_kv", GGUF.U32, kvHeads);
put("llama.rope.freq_base", GGUF.F32, cfg.ropeTheta);
put("llama.attention.layer_norm_rms_epsilon", GGUF.F32, cfg.eps);
put("llama.rope.dimension_count", GGUF.U32, headDim);
put("llama.attention.key_length", GGUF.U32, headDim);
put("llama.attention.value_length", GGUF.U32, headDim);
const tokens = [], scores = [], types = [];
for (const [t, ty] of [["<unk>", 2], ["<s>", 3], ["</s>", 3]]) { tokens.push(t); scores.push(0); types.push(ty); }
for (let b = 0; b < 256; b++) { tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`); scores.push(0); types.push(6); }
for (let i = tokens.length; i < vocab; i++) { tokens.push(`\u2581t${i}`); scores.push(-i); types.push(1); }
put("tokenizer.ggml.model", GGUF.STRING, "llama");
put("tokenizer.ggml.tokens", GGUF.ARRAY, tokens, GGUF.STRING);
put("tokenizer.ggml.scores", GGUF.ARRAY, scores, GGUF.F32);
put("tokenizer.ggml.token_type", GGUF.ARRAY, types, GGUF.I32);
put("tokenizer.ggml.unknown_token_id", GGUF.U32, 0);
put("tokenizer.ggml.bos_token_id", GGUF.U32, 1);
put("tokenizer.ggml.eos_token_id", GGUF.U32, 2);
put("tokenizer.ggml.add_bos_token", GGUF.BOOL, true);
put("tokenizer.ggml.add_eos_token", GGUF.BOOL, false);

const w = new Writer();
w.parts.push(Buffer.from("GGUF", "ascii"));
w.u32(3);
w.u64(tensors.length);
w.u64(kv.length);
const value = (type, v) => {
  switch (type) {
    case GGUF.U32: w.u32(v); break;
    case GGUF.I32: w.i32(v); break;
    case GGUF.F32: w.f32(v); break;
    case GGUF.BOOL: w.parts.push(Buffer.from([v ? 1 : 0])); break;
    case GGUF.STRING: w.str(v); break;
    default: throw new Error(`type ${type}`);
  }
};
for (const e of kv) {
  w.str(e.key);
  w.u32(e.type);
  if (e.type === GGUF.ARRAY) {
    w.u32(e.elem);
    w.u64(e.value.length);
    for (const x of e.value) value(e.elem, x);
  } else value(e.type, e.value);
}
let gOffset = 0;
for (const t of tensors) {
  t.ggufType = t.norm ? TYPE.F32 : TYPE.BF16;
  t.ggufBytes = count(t) * (t.norm ? 4 : 2);
  t.ggufOffset = gOffset;
  gOffset += Math.ceil(t.ggufBytes / ALIGN) * ALIGN;
  w.str(t.gguf);
  w.u32(t.shape.length);
  for (const d of [...t.shape].reverse()) w.u64(d); // ne[0] is the innermost (columns)
  w.u32(t.ggufType);
  w.u64(t.ggufOffset);
}
let ggHeader = w.buffer();
ggHeader = Buffer.concat([ggHeader, Buffer.alloc((ALIGN - (ggHeader.length % ALIGN)) % ALIGN)]);
const ggData = ggHeader.length;

// ---- write ------------------------------------------------------------------------------------------------
const hfDir = path.join(out, "hf");
fs.mkdirSync(hfDir, { recursive: true });
const config = {
  architectures: ["LlamaForCausalLM"], model_type: "llama", torch_dtype: "bfloat16",
  vocab_size: vocab, hidden_size: hidden, intermediate_size: inter, num_hidden_layers: layers,
  num_attention_heads: heads, num_key_value_heads: kvHeads, head_dim: headDim, hidden_act: "silu",
  max_position_embeddings: cfg.maxPos, rms_norm_eps: cfg.eps, rope_theta: cfg.ropeTheta, rope_scaling: null,
  tie_word_embeddings: false, attention_bias: false, mlp_bias: false, bos_token_id: 1, eos_token_id: 2,
  initializer_range: 0.02,
};
fs.writeFileSync(path.join(hfDir, "config.json"), JSON.stringify(config, null, 2) + "\n");
const stPath = path.join(hfDir, "model.safetensors"), ggPath = path.join(out, "model-bf16.gguf");
const st = fs.openSync(stPath + ".tmp", "w"), gg = fs.openSync(ggPath + ".tmp", "w");
const lenBuf = Buffer.alloc(8);
lenBuf.writeBigUInt64LE(BigInt(stJson.length));
fs.writeSync(st, lenBuf, 0, 8, 0);
fs.writeSync(st, stJson, 0, stJson.length, 8);
fs.writeSync(gg, ggHeader, 0, ggHeader.length, 0);
const bytesOf = (a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
const started = Date.now();
let params = 0;
for (const t of tensors) {
  const n = count(t);
  params += n;
  const bf = toBf16(normals(t.hf, n, t.norm ? 1 : 0, 0.02));
  fs.writeSync(st, bytesOf(bf), 0, bf.byteLength, stData + t.stOffset);
  const g = t.norm ? bf16ToF32(bf) : t.permuteHeads ? permuteRows(bf, t.shape[0], t.shape[1], t.permuteHeads) : bf;
  fs.writeSync(gg, bytesOf(g), 0, g.byteLength, ggData + t.ggufOffset);
}
const last = tensors[tensors.length - 1];
fs.ftruncateSync(gg, ggData + last.ggufOffset + last.ggufBytes);
fs.closeSync(st);
fs.closeSync(gg);
fs.renameSync(stPath + ".tmp", stPath);
fs.renameSync(ggPath + ".tmp", ggPath);
console.log(JSON.stringify({
  params, bf16_weight_bytes: params * 2, hf: hfDir, gguf: ggPath, seconds: (Date.now() - started) / 1000, config: cfg,
}));

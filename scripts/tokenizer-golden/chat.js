#!/usr/bin/env node
// Renders conversations with DeepSeek-V3's own chat_template (tests/fixtures/tokenizers/deepseek_v3/
// tokenizer_config.json) through Hugging Face's Jinja engine (npm @huggingface/jinja, what transformers.js
// uses), so that the C# ChatFormat can be checked against the template itself without Node at test time.
//
//   cd scripts/tokenizer-golden && npm ci && node chat.js
//
// Writes tests/fixtures/tokenizers/deepseek_v3.chat.golden.jsonl: one JSON object per conversation,
// { "messages": [{ "role", "content" }...], "add_generation_prompt": bool, "text": the rendered prompt }.
// The conversations are the ones ChatFormat supports: system, user and assistant turns (no tool calls).
'use strict';

const fs = require('fs');
const path = require('path');
const { Template } = require('@huggingface/jinja');

const repo = path.resolve(__dirname, '..', '..');
const folder = path.join(repo, 'tests', 'fixtures', 'tokenizers');
const config = JSON.parse(fs.readFileSync(path.join(folder, 'deepseek_v3', 'tokenizer_config.json'), 'utf8'));
const token = (t) => (typeof t === 'string' ? t : t.content);

const system = (content) => ({ role: 'system', content });
const user = (content) => ({ role: 'user', content });
const assistant = (content) => ({ role: 'assistant', content });

const conversations = [
  [user('hi')],
  [system('You are helpful.'), user('What is 2+2?')],
  [system('You are helpful.'), user('What is 2+2?'), assistant('4'), user('And 3+3?')],
  [user('Hello'), assistant('Hi!')],
  [system('One.'), user('hi'), system('Two.')],
  [system('A'), system('B'), system('C'), user('x')],
  [system('')],
  [],
  [user('')],
  [user('line one\nline two\n\n  indented'), assistant('```python\nprint("x")\n```'), user('next')],
  [user('Grüße, 你好, こんにちは, مرحبا 👋🏽'), assistant('😀 ok'), user('𝔘𝔫𝔦𝔠𝔬𝔡𝔢')],
  [user('markers as text: <｜User｜> <｜Assistant｜> <｜end▁of▁sentence｜>'), assistant('fine')],
  [assistant('I start.'), user('ok')],
  [user('a'), user('b'), assistant('c'), assistant('d')],
  [system('sys'), user('q1'), assistant('<think>\nhmm\n</think>\n\nanswer'), user('q2')],
];

const template = new Template(config.chat_template);
const lines = [];
for (const messages of conversations) {
  for (const addGenerationPrompt of [true, false]) {
    const text = template.render({
      messages,
      add_generation_prompt: addGenerationPrompt,
      bos_token: token(config.bos_token),
      eos_token: token(config.eos_token),
    });
    lines.push(JSON.stringify({ messages, add_generation_prompt: addGenerationPrompt, text }));
  }
}
const outFile = path.join(folder, 'deepseek_v3.chat.golden.jsonl');
fs.writeFileSync(outFile, lines.join('\n') + '\n');
console.log(`wrote ${lines.length} rendered conversations to ${path.relative(repo, outFile)}`);

// greedy_ids: the greedy continuation of a prompt of token ids with llama.cpp, printed as one comma-separated
// line, to compare with `dsk generate --prompt-ids ... --print-ids --temperature 0` on the same weights (a check
// that write_model.mjs's GGUF, its q/k permutation included, holds the model dsk loads from the safetensors).
// No BOS is added; the prompt runs as one batch, then one token per step, each the argmax of the last logits.
//   usage: greedy_ids MODEL.gguf IDS(1,2,3) N_NEW [THREADS]
#include "llama.h"
#include "ggml-backend.h"
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

int main(int argc, char ** argv) {
    if (argc < 4) { fprintf(stderr, "usage: greedy_ids MODEL.gguf IDS N_NEW [THREADS]\n"); return 2; }
    std::vector<llama_token> ids;
    std::stringstream list(argv[2]);
    for (std::string item; std::getline(list, item, ',');) ids.push_back(std::atoi(item.c_str()));
    const int n_new = std::atoi(argv[3]);
    const int threads = argc > 4 ? std::atoi(argv[4]) : 2;
    if (ids.empty() || n_new < 1) { fprintf(stderr, "greedy_ids: give at least one id and N_NEW >= 1\n"); return 2; }

    llama_log_set([](ggml_log_level, const char *, void *) {}, nullptr);
    ggml_backend_load_all();
    llama_backend_init();
    llama_model * model = llama_model_load_from_file(argv[1], llama_model_default_params());
    if (!model) { fprintf(stderr, "greedy_ids: cannot load %s\n", argv[1]); return 1; }
    const int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = ids.size() + n_new;
    cp.n_batch = cp.n_ubatch = ids.size();
    cp.n_threads = cp.n_threads_batch = threads;
    llama_context * ctx = llama_init_from_model(model, cp);
    if (!ctx) { fprintf(stderr, "greedy_ids: cannot create a context\n"); return 1; }

    std::vector<llama_token> out;
    llama_batch batch = llama_batch_get_one(ids.data(), ids.size());
    llama_token next = 0;
    for (int i = 0; i < n_new; i++) {
        if (llama_decode(ctx, batch) != 0) { fprintf(stderr, "greedy_ids: llama_decode failed\n"); return 1; }
        const float * logits = llama_get_logits_ith(ctx, -1);
        next = 0;
        for (int v = 1; v < n_vocab; v++) if (logits[v] > logits[next]) next = v;
        out.push_back(next);
        batch = llama_batch_get_one(&next, 1);
    }
    for (size_t i = 0; i < out.size(); i++) printf(i ? ",%d" : "%d", out[i]);
    printf("\n");
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}

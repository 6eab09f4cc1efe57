/work/main/bench/peers/llamacpp/build/bin/llama-bench -p 512 -n 128 -r 3 -t 2 -o json -m /work/main/bench/peers/llamacpp/models/full/model-q4_0.gguf

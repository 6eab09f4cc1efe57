/work/main/src/DeepSeekKernels.Cli/bin/Release/net10.0/dsk bench --model /work/wt-peer/bench/peers/llamacpp/models/full/hf --prompt-tokens 512 --gen-tokens 128 --repetitions 3 --json --backend cpu

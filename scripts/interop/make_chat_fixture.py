"""Build the seed's "Transformer Pipeline" model shape with real MLflow, without PyTorch.

usage: make_chat_fixture.py <out-dir>

The seed logs a Hugging Face text-generation pipeline with
`mlflow.transformers.log_model(..., task="llm/v1/chat")`. Installing torch to build that in CI is
impractical, so this builds it once, and the small result is committed under
tests/fixtures/mlflow/transformers-chat/ (MLflow 3.x) and transformers-chat-mlflow2/ (MLflow 2.x).
It goes through MLflow's own save path for a local checkpoint
(`mlflow.transformers.save_model("<checkpoint dir>", task="llm/v1/chat")`), which writes the
MLmodel (flavor config, llm/v1/chat signature and metadata), the model and tokenizer folders and
the environment files, exactly as MLflow does. The checkpoint is a tiny Phi-3 configuration (no
weights: the app resolves `source_model_name` to the ONNX web export) with a small tokenizer
carrying Phi-3's special tokens and chat template; it sits at the relative path
microsoft/Phi-3-mini-4k-instruct so that `source_model_name` reads as in the seed.

Needs an interpreter with transformers<5 and no torch, and the MLflow that is to write it:
`pip install mlflow==3.17.2 "transformers<5"` for the 3.x fixture; `pip install mlflow==2.22.5
sqlalchemy==2.0.58 transformers==4.57.6` for the 2.x one (2.22 has the same save path and needs
no change here; its MLmodel has no `model_id`, and its environment files pin mlflow==2.22.5).
Two things differ from a machine with torch, and are set here: the flavor's `framework` is `pt`
(transformers reports `tf` when torch is absent), and the pip requirements are given (MLflow
would pin the installed torch).
"""

import json
import os
import shutil
import sys
import tempfile

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["TRANSFORMERS_VERBOSITY"] = "error"

import mlflow  # noqa: E402
import mlflow.transformers  # noqa: E402
from tokenizers import Tokenizer, models, pre_tokenizers, decoders  # noqa: E402
from transformers import LlamaTokenizerFast  # noqa: E402

SOURCE = "microsoft/Phi-3-mini-4k-instruct"

# Phi-3's chat markup: <|system|>, <|user|>, <|assistant|> turns closed by <|end|>.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{'<|system|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)

SPECIAL = ["<unk>", "<s>", "</s>", "<|endoftext|>", "<|assistant|>", "<|end|>", "<|user|>",
           "<|system|>"]

CONFIG = {
    "architectures": ["Phi3ForCausalLM"],
    "model_type": "phi3",
    "bos_token_id": 1,
    "eos_token_id": 32000,
    "pad_token_id": 32000,
    "hidden_act": "silu",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "num_key_value_heads": 2,
    "max_position_embeddings": 512,
    "original_max_position_embeddings": 512,
    "rms_norm_eps": 1e-05,
    "rope_theta": 10000.0,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "use_cache": True,
    "vocab_size": 32064,
}


def write_checkpoint(root):
    ckpt = os.path.join(root, *SOURCE.split("/"))
    os.makedirs(ckpt)
    with open(os.path.join(ckpt, "config.json"), "w") as f:
        json.dump(CONFIG, f, indent=2)
    with open(os.path.join(ckpt, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": 1, "eos_token_id": [32000, 32001, 32007], "pad_token_id": 32000}, f, indent=2)
    # A small byte-level vocabulary instead of Phi-3's 32k pieces: enough for MLflow to load and
    # save a real tokenizer, and small enough to commit.
    vocab = {t: i for i, t in enumerate(SPECIAL)}
    for b in range(256):
        vocab.setdefault(f"<0x{b:02X}>", len(vocab))
    for w in ["▁", "▁Hello", "▁world", "▁the", "▁a", "."]:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>", byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    tok.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Metaspace()])
    fast = LlamaTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="<|endoftext|>",
        unk_token="<unk>",
        pad_token="<|endoftext|>",
        additional_special_tokens=SPECIAL[4:],
        add_bos_token=False,
        add_eos_token=False,
        legacy=False,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(ckpt)
    return SOURCE


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = os.path.abspath(sys.argv[1])
    if os.path.exists(out):
        shutil.rmtree(out)
    here = os.getcwd()
    original = mlflow.transformers.build_flavor_config_from_local_checkpoint

    def with_pytorch_framework(*args, **kwargs):
        conf = original(*args, **kwargs)
        if "framework" in conf:
            conf["framework"] = "pt"
        return conf

    mlflow.transformers.build_flavor_config_from_local_checkpoint = with_pytorch_framework
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            checkpoint = write_checkpoint(tmp)
            mlflow.transformers.save_model(
                checkpoint,
                out,
                task="llm/v1/chat",
                pip_requirements=[f"mlflow=={mlflow.__version__}", "transformers", "torch", "accelerate"],
                input_example={
                    "messages": [
                        {"role": "system", "content": "You are a helpful assistant."},
                        {"role": "user", "content": "What is MLflow?"},
                    ],
                    "max_tokens": 32,
                },
            )
        finally:
            os.chdir(here)
    print(out)


if __name__ == "__main__":
    main()

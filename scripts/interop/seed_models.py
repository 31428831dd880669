"""The seed's "Custom Python Wrapper" model, made and judged by real MLflow and onnxruntime-genai.

usage:
  seed_models.py log-pyfunc <tracking-uri> <genai-folder> <out-dir>
      Logs the wrapper (artifact `phi3-mini-onnx` = the genai folder, signature inferred from
      {"prompt": ...} and ["Run"]) and downloads the logged model into <out-dir>.
      Prints {"model_uri", "run_id", "model_dir"}.
  seed_models.py log-pyfunc-inspect <tracking-uri> <genai-folder> <out-dir>
      The same, and what `inspect` reports on the logged model, from one interpreter:
      {"model_uri", "run_id", "model_dir", "inspect": {...}}.
  seed_models.py genai-tokens <genai-folder> <prompt> [<prompt> ...]
      The same generation with onnxruntime-genai directly: prompt ids, new ids and text.
  seed_models.py inspect <model-dir or .zip>
      What mlflow.models.Model.load and mlflow.pyfunc.load_model see. Prints JSON.
  seed_models.py inspect-predict <model-dir or .zip> <prompt> [<prompt> ...]
      Both of the above from one interpreter: {"inspect": {...}, "predictions": [...]}.
  seed_models.py judge-text <genai-folder> <prompt> <text-file>
      Judges another runtime's greedy answer to <prompt> (the text in <text-file>, UTF-8) under
      onnxruntime-genai's own logits, teacher-forced along that text: at each step the token taken
      is the highest-scoring one whose decoding keeps to the text, and its gap to the step's best
      logit is reported relative to the largest |logit|. Prints {"steps", "consumed", "near_ties",
      "max_rel_gap", "first_difference", "worst": [...]}.
  seed_models.py predict <model-dir or .zip> <prompt> [<prompt> ...]
      mlflow.pyfunc.load_model(<model-dir>).predict(<one-row frame with column prompt>) for each
      prompt. Prints {"predictions": [...]}.
"""

import os
import shutil
import sys
import tempfile
import zipfile

from common import MLFLOW_MAJOR, emit

import mlflow
from mlflow.models import infer_signature

# The folder name the seed's artifact had (Phi-3-mini-4k-instruct-onnx, CPU int4).
GENAI_DIR_NAME = "cpu-int4-rtn-block-32-acc-level-4"

EXAMPLE_PROMPT = (
    "<|system|>You are a helpful assistant.<|end|><|user|>Tell me a joke about MLflow.<|end|>"
    "<|assistant|>"
)


class Phi3Model(mlflow.pyfunc.PythonModel):
    """The seed's wrapper: onnxruntime-genai on the `phi3-mini-onnx` artifact, prompt in, new text out."""

    def load_context(self, context):
        import onnxruntime_genai as og

        model_path = context.artifacts["phi3-mini-onnx"]
        self.model = og.Model(model_path)
        self.tokenizer = og.Tokenizer(self.model)
        self.search_options = {"max_length": 300, "temperature": 0.2}

    def __getstate__(self):
        # MLflow 2.x calls load_context on this very instance while saving it (whether or not a
        # signature is given) and then pickles it; onnxruntime-genai's Model and Tokenizer cannot
        # be pickled. load_context builds them again wherever the model is loaded, so the pickle
        # leaves them out. (3.x pickles the instance as constructed: nothing to leave out there.)
        return {k: v for k, v in self.__dict__.items() if k not in ("model", "tokenizer")}

    def predict(self, context, model_input):
        import onnxruntime_genai as og

        prompt = model_input["prompt"][0]
        input_ids = self.tokenizer.encode(prompt)
        params = og.GeneratorParams(self.model)
        params.set_search_options(**self.search_options)
        generator = og.Generator(self.model, params)
        generator.append_tokens(input_ids)
        while not generator.is_done():
            generator.generate_next_token()
        new_tokens = generator.get_sequence(0)[len(input_ids) :]
        return self.tokenizer.decode(new_tokens)


def log_pyfunc(uri, genai_folder, out_dir):
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("phi3-seed")
    with tempfile.TemporaryDirectory() as tmp:
        artifact = os.path.join(tmp, GENAI_DIR_NAME)
        shutil.copytree(genai_folder, artifact)
        input_example = {"prompt": EXAMPLE_PROMPT}
        kwargs = dict(
            python_model=Phi3Model(),
            artifacts={"phi3-mini-onnx": artifact},
            input_example=input_example,
            signature=infer_signature(input_example, ["Run"]),
            extra_pip_requirements=["torch", "onnxruntime_genai", "numpy"],
        )
        with mlflow.start_run() as run:
            if MLFLOW_MAJOR >= 3:
                info = mlflow.pyfunc.log_model(name="phi3-mlflow-model", **kwargs)
            else:
                info = mlflow.pyfunc.log_model(artifact_path="phi3-mlflow-model", **kwargs)
    local = mlflow.artifacts.download_artifacts(artifact_uri=info.model_uri, dst_path=out_dir)
    # 3.x downloads a logged model into out_dir itself; 2.x into out_dir/<artifact_path>.
    return {"model_uri": info.model_uri, "run_id": run.info.run_id, "model_dir": local}


def model_folder(path):
    """A model folder, or a model zip (the app's export) unpacked into a temp folder."""
    if not path.endswith(".zip"):
        return path
    out = tempfile.mkdtemp(prefix="model-zip-", dir=os.getcwd())
    with zipfile.ZipFile(path) as z:
        z.extractall(out)
    return out


def inspection(model_dir):
    model_dir = model_folder(model_dir)
    m = mlflow.models.Model.load(model_dir)
    loaded = mlflow.pyfunc.load_model(model_dir)
    meta = loaded.metadata
    sig = meta.signature
    return (
        {
            "flavors": sorted(m.flavors),
            "loader_module": m.flavors["python_function"].get("loader_module"),
            "artifacts": {
                k: v["path"] for k, v in m.flavors["python_function"].get("artifacts", {}).items()
            },
            "signature": m.signature.to_dict() if m.signature else None,
            "input_names": sig.inputs.input_names() if sig else None,
            "input_types": [str(t) for t in sig.inputs.input_types()] if sig else None,
            "saved_input_example_info": m.saved_input_example_info,
            "input_example": m.load_input_example(model_dir),
            "run_id": m.run_id,
            "model_uuid": m.model_uuid,
            "mlflow_version": m.mlflow_version,
        }
    )


def inspect(model_dir):
    emit(inspection(model_dir))


def predictions(model_dir, prompts):
    model_dir = model_folder(model_dir)
    import pandas as pd

    loaded = mlflow.pyfunc.load_model(model_dir)
    # The seed calls predict({"prompt": [p]}). MLflow 3.x (with pandas 3) turns that dict into ONE
    # record whose cell is the list, so the wrapper's model_input["prompt"][0] would be a list and
    # onnxruntime-genai's encode() refuses it. A one-column frame is what 2.x made of that dict, and
    # what both versions pass through unchanged.
    return [loaded.predict(pd.DataFrame({"prompt": [p]})) for p in prompts]


def predict(model_dir, prompts):
    emit({"predictions": predictions(model_dir, prompts)})


def genai_tokens(folder, prompts):
    """The wrapper's steps one by one, so a difference can be traced to tokenizing or decoding."""
    import onnxruntime_genai as og

    model = og.Model(folder)
    tokenizer = og.Tokenizer(model)
    out = []
    for prompt in prompts:
        ids = tokenizer.encode(prompt)
        params = og.GeneratorParams(model)
        params.set_search_options(max_length=300, temperature=0.2)
        generator = og.Generator(model, params)
        generator.append_tokens(ids)
        while not generator.is_done():
            generator.generate_next_token()
        new = generator.get_sequence(0)[len(ids) :]
        out.append(
            {
                "prompt_ids": [int(x) for x in ids],
                "new_ids": [int(x) for x in new],
                "text": tokenizer.decode(new),
            }
        )
    emit({"results": out})


def judge_text(folder, prompt, text_file, candidates=64):
    """Walks `text` token by token under native logits (see the usage above)."""
    import numpy as np
    import onnxruntime_genai as og

    with open(text_file, encoding="utf-8") as f:
        text = f.read()
    model = og.Model(folder)
    tokenizer = og.Tokenizer(model)
    params = og.GeneratorParams(model)
    # The wrapper's own limit: an answer it could have given fits in it.
    params.set_search_options(max_length=300)
    generator = og.Generator(model, params)
    generator.append_tokens(tokenizer.encode(prompt))
    new = []
    decoded = ""
    steps = []
    while decoded != text:
        logits = np.asarray(generator.get_logits(), dtype=np.float64).reshape(-1)
        scale = float(np.max(np.abs(logits)))
        best = int(np.argmax(logits))
        chosen = None
        for c in np.argsort(-logits)[:candidates]:
            c = int(c)
            s = tokenizer.decode(new + [c])
            # A token may end inside a multi-byte character: compare what is complete.
            if s and text.startswith(s.rstrip("\ufffd")) and len(s.rstrip("\ufffd")) >= len(
                decoded.rstrip("\ufffd")
            ):
                chosen, decoded = c, s
                break
        if chosen is None:
            break
        steps.append(
            {
                "step": len(new),
                "id": chosen,
                "native_best": best,
                "rel_gap": float(logits[best] - logits[chosen]) / scale,
            }
        )
        new.append(chosen)
        generator.append_tokens([chosen])
    ties = [s for s in steps if s["id"] != s["native_best"]]
    emit(
        {
            "steps": len(steps),
            "consumed": decoded == text,
            "stopped_at_char": len(decoded),
            "near_ties": len(ties),
            "max_rel_gap": max((s["rel_gap"] for s in steps), default=0.0),
            "first_difference": ties[0]["step"] if ties else None,
            "worst": sorted(ties, key=lambda s: -s["rel_gap"])[:5],
        }
    )


def main():
    args = sys.argv[1:]
    if len(args) == 4 and args[0] == "log-pyfunc":
        emit(log_pyfunc(*args[1:]))
    elif len(args) == 4 and args[0] == "log-pyfunc-inspect":
        logged = log_pyfunc(*args[1:])
        emit({**logged, "inspect": inspection(logged["model_dir"])})
    elif len(args) == 2 and args[0] == "inspect":
        inspect(args[1])
    elif len(args) >= 3 and args[0] == "genai-tokens":
        genai_tokens(args[1], args[2:])
    elif len(args) >= 3 and args[0] == "inspect-predict":
        emit({"inspect": inspection(args[1]), "predictions": predictions(args[1], args[2:])})
    elif len(args) == 4 and args[0] == "judge-text":
        judge_text(*args[1:])
    elif len(args) >= 3 and args[0] == "predict":
        predict(args[1], args[2:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()

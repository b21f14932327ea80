"""Run by the python of an environment with llama-cpp-python, never imported by tunewright: loads a GGUF
with its own chat template and answers each chat the way a llama.cpp client asks (greedy). Reads
{"model", "chats", "max_tokens"} as JSON on stdin; writes {"runtime", "answers"} as JSON on stdout."""

import json
import sys

import llama_cpp


def main() -> None:
    job = json.load(sys.stdin)
    llm = llama_cpp.Llama(model_path=job["model"], n_ctx=job.get("n_ctx", 2048), seed=0, verbose=False)
    answers = []
    for chat in job["chats"]:
        reply = llm.create_chat_completion(messages=chat, max_tokens=job["max_tokens"], temperature=0.0,
                                           top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0)
        answers.append(reply["choices"][0]["message"]["content"].strip())
    json.dump({"runtime": f"llama-cpp-python {llama_cpp.__version__}", "answers": answers}, sys.stdout)


if __name__ == "__main__":
    main()

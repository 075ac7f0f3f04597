"""tinygpt: the blog series' character-level GPT, packaged for the Hugging Face ecosystem.

    from tinygpt import TinyGPTConfig, TinyGPTForCausalLM, char_tokenizer

Importing tinygpt registers the model with transformers' Auto classes, so `AutoConfig`,
`AutoModelForCausalLM` and `AutoTokenizer` load tinygpt folders without remote code. Folders saved by tinygpt
also carry the model's and the tokenizer's code, so they load with `trust_remote_code=True` where tinygpt is not
installed.
"""

from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from .configuration_tinygpt import TinyGPTConfig
from .modeling_tinygpt import TinyGPTForCausalLM
from .tokenization import CharTokenizer, char_tokenizer

__version__ = "0.1.0"

AutoConfig.register(TinyGPTConfig.model_type, TinyGPTConfig, exist_ok=True)
AutoModelForCausalLM.register(TinyGPTConfig, TinyGPTForCausalLM, exist_ok=True)
AutoTokenizer.register(TinyGPTConfig, tokenizer_class=CharTokenizer, exist_ok=True)
# `save_pretrained` writes `auto_map` into config.json (tokenizer_config.json for the tokenizer) and copies
# configuration_tinygpt.py, modeling_tinygpt.py and tokenization_tinygpt.py next to the weights, so the folder
# is self-contained.
TinyGPTConfig.register_for_auto_class()
TinyGPTForCausalLM.register_for_auto_class("AutoModelForCausalLM")
CharTokenizer.register_for_auto_class("AutoTokenizer")

__all__ = ["CharTokenizer", "TinyGPTConfig", "TinyGPTForCausalLM", "char_tokenizer", "__version__"]

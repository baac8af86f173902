"""Every paper the lectures cite, written once: :data:`REFERENCES` (key -> :class:`Ref`) and
:data:`LECTURE_REFERENCES` (lecture notebook stem -> the keys it cites, in order of citation).
tests/test_selfstudy.py checks that each lecture cites what its list names and lists what it cites."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Ref:
    """One paper: ``authors`` (as printed), ``year``, ``title``, ``venue``; ``cited_as``: the first
    author's surname as the lecture text writes it (what the test looks for)."""

    authors: str
    year: int
    title: str
    venue: str
    cited_as: str

    def markdown(self) -> str:
        return f"{self.authors} ({self.year}). *{self.title}*. {self.venue}."


REFERENCES = {
    "pascanu2013": Ref("Razvan Pascanu, Tomas Mikolov and Yoshua Bengio", 2013,
                       "On the difficulty of training recurrent neural networks",
                       "Proceedings of the 30th International Conference on Machine Learning (ICML), PMLR 28", "Pascanu"),
    "linzen2016": Ref("Tal Linzen, Emmanuel Dupoux and Yoav Goldberg", 2016,
                      "Assessing the ability of LSTMs to learn syntax-sensitive dependencies",
                      "Transactions of the Association for Computational Linguistics 4", "Linzen"),
    "le2015": Ref("Quoc V. Le, Navdeep Jaitly and Geoffrey E. Hinton", 2015,
                  "A simple way to initialize recurrent networks of rectified linear units", "arXiv:1504.00941", "Le"),
    "hochreiter1997": Ref("Sepp Hochreiter and Jürgen Schmidhuber", 1997, "Long short-term memory",
                          "Neural Computation 9(8)", "Hochreiter"),
    "gers2000": Ref("Felix A. Gers, Jürgen Schmidhuber and Fred Cummins", 2000,
                    "Learning to forget: continual prediction with LSTM", "Neural Computation 12(10)", "Gers"),
    "jozefowicz2015": Ref("Rafal Jozefowicz, Wojciech Zaremba and Ilya Sutskever", 2015,
                          "An empirical exploration of recurrent network architectures",
                          "Proceedings of the 32nd International Conference on Machine Learning (ICML), PMLR 37",
                          "Jozefowicz"),
    "cho2014": Ref("Kyunghyun Cho, Bart van Merriënboer, Caglar Gulcehre, Dzmitry Bahdanau, Fethi Bougares, "
                   "Holger Schwenk and Yoshua Bengio", 2014,
                   "Learning phrase representations using RNN encoder-decoder for statistical machine translation",
                   "Proceedings of EMNLP 2014", "Cho"),
    "chung2014": Ref("Junyoung Chung, Caglar Gulcehre, Kyunghyun Cho and Yoshua Bengio", 2014,
                     "Empirical evaluation of gated recurrent neural networks on sequence modeling",
                     "NIPS 2014 Workshop on Deep Learning (arXiv:1412.3555)", "Chung"),
    "greff2017": Ref("Klaus Greff, Rupesh K. Srivastava, Jan Koutník, Bas R. Steunebrink and Jürgen Schmidhuber",
                     2017, "LSTM: a search space odyssey",
                     "IEEE Transactions on Neural Networks and Learning Systems 28(10)", "Greff"),
    "madsen2019": Ref("Andreas Madsen", 2019, "Visualizing memorization in RNNs", "Distill", "Madsen"),
    "he2016": Ref("Kaiming He, Xiangyu Zhang, Shaoqing Ren and Jian Sun", 2016,
                  "Deep residual learning for image recognition", "Proceedings of CVPR 2016", "He"),
    "srivastava2015": Ref("Rupesh K. Srivastava, Klaus Greff and Jürgen Schmidhuber", 2015, "Training very deep networks",
                          "Advances in Neural Information Processing Systems 28 (NIPS 2015)", "Srivastava"),
    "huang2017": Ref("Gao Huang, Zhuang Liu, Laurens van der Maaten and Kilian Q. Weinberger", 2017,
                     "Densely connected convolutional networks", "Proceedings of CVPR 2017", "Huang"),
    "veit2016": Ref("Andreas Veit, Michael Wilber and Serge Belongie", 2016,
                    "Residual networks behave like ensembles of relatively shallow networks",
                    "Advances in Neural Information Processing Systems 29 (NIPS 2016)", "Veit"),
    "britz2017": Ref("Denny Britz, Anna Goldie, Minh-Thang Luong and Quoc Le", 2017,
                     "Massive exploration of neural machine translation architectures", "Proceedings of EMNLP 2017",
                     "Britz"),
    "merity2017": Ref("Stephen Merity, Nitish Shirish Keskar and Richard Socher", 2017,
                      "Regularizing and optimizing LSTM language models", "arXiv:1708.02182 (ICLR 2018)", "Merity"),
    "pytorch2019": Ref("The PyTorch team", 2019, "Optimizing CUDA recurrent neural networks with TorchScript",
                       "PyTorch blog", "PyTorch team"),
}

LECTURE_REFERENCES = {
    "01_vanishing_gradients": ("linzen2016", "pascanu2013", "le2015"),
    "02_exploding_gradients_and_clipping": ("pascanu2013",),
    "03_lstm": ("hochreiter1997", "gers2000", "jozefowicz2015", "le2015"),
    "04_gru_and_choosing": ("cho2014", "chung2014", "jozefowicz2015", "greff2017", "madsen2019"),
    "05_skip_connections": ("he2016", "srivastava2015", "huang2017", "veit2016"),
    "06_bidirectional_and_stacked": ("britz2017",),
    "07_training_on_a_gpu": ("pytorch2019", "merity2017"),
}

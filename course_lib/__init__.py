"""course_lib: the code behind *Vanishing Gradients and Fancy RNNs*.

- ``course_lib.reference``   the answers: cells, sequences, connections, clipping, gradient flow
- ``course_lib.tasks``       synthetic tasks and the real-text corpus, seeded
- ``course_lib.models``      small ``nn.Module`` wrappers the experiments train
- ``course_lib.train``       the training loop (device, clipping, checkpoints, NaN recovery)
- ``course_lib.experiments`` one module per lecture; each function returns the numbers a plot needs
- ``course_lib.checks``      ``check_<exercise>`` functions that nbgrader test cells call
- ``course_lib.budget``      one knob: ``ci`` / ``default`` / ``full``
- ``course_lib.plots``, ``course_lib.widgets``, ``course_lib.report``  figures, explorers, recording claims

The tooling around the course (main job, site, browser, notebook execution) is ``coursetools``.
"""

__version__ = "0.1.0"

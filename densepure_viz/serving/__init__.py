"""How people reach the engine: the command line, the JSON reports, the shared answers and the Gradio UI
(ui/, the only place that imports gradio).

Imports: everything below it; the CLI and the UI do not import each other.
"""

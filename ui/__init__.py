"""The Gradio app: symbol management, human signal review, portfolio and orders."""

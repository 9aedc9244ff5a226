"""The stages' plain logic, one subpackage a stage; each stage's Prefect @task wrappers are in its tasks.py."""

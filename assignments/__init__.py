"""The course's autograded assignments (otter-grader): `python -m assignments.build`."""

"""Where Prefect code imports its run records from (``prefect.client``).

Celerity has no API client: the run store plays its part. This package only
keeps the import paths that ported code uses for the records and state
types, so ``from prefect.client.schemas.objects import StateType`` ports by
changing the import root.
"""

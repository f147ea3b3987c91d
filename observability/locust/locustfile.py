"""Locust users for the readmit API: realistic encounters, 80% single and 20% ten-encounter requests.

Encounters come from READMIT_LOCUST_ENCOUNTERS (a JSON list written by step_load.py from the schema's
synthetic generator), so this file imports nothing but Locust (Locust must not be imported after
other libraries: gevent's monkey-patching). READMIT_API_KEY is sent as a bearer token when set.
"""
import json
import os
import random

from locust import FastHttpUser, between, task

ENCOUNTERS = json.loads(open(os.environ["READMIT_LOCUST_ENCOUNTERS"]).read())
HEADERS = {"Authorization": f"Bearer {os.environ['READMIT_API_KEY']}"} if os.environ.get("READMIT_API_KEY") else {}


class Clinician(FastHttpUser):
    wait_time = between(0.0, 0.05)

    @task(8)
    def one_encounter(self):
        self.client.post("/predict", json={"encounters": [random.choice(ENCOUNTERS)]}, headers=HEADERS,
                         name="/predict (1 encounter)")

    @task(2)
    def ten_encounters(self):
        self.client.post("/predict", json={"encounters": random.sample(ENCOUNTERS, 10)}, headers=HEADERS,
                         name="/predict (10 encounters)")

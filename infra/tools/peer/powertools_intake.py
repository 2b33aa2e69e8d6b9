"""bench-intake's peer: the Stripe webhook intake a team would write with Powertools for AWS
Lambda (Python), measured in-process exactly as bench-intake measures Inlet's handler.

The handler: the stripe library's `Webhook.construct_event` on the raw body, Powertools
idempotency on DynamoDB keyed by the event id (in progress, then completed: two writes), and a
boto3 SQS `send_message` of the event. Clients are built once, outside the handler, as on Lambda.

Reads one JSON job on stdin: {"table", "queue_url", "secret", "bodies": [...], "concurrency"};
each worker's first request warms its connections and is not counted; prints {"latencies_ms": [...], "statuses": {...}} on stdout. Concurrency N runs N worker
processes (as N Lambda containers would run: no shared GIL), each sequential.
"""

import json
import os
import sys
import time
from multiprocessing import Pool

import boto3
import stripe
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from botocore.config import Config

_state = {}


class _Context:
    """What Powertools reads of a Lambda context: the time left (a 30 s timeout, fresh)."""

    def get_remaining_time_in_millis(self):
        return 30_000


def _init(table, queue_url, secret):
    # Once per worker, like a Lambda container's cold start.
    config = Config(retries={"max_attempts": 2, "mode": "standard"})
    sqs = boto3.client("sqs", config=config)
    persistence = DynamoDBPersistenceLayer(
        table_name=table, boto3_client=boto3.client("dynamodb", config=config)
    )

    config = IdempotencyConfig(event_key_jmespath="id")
    # On Lambda the handler registers its context; here a stand-in with Lambda's interface.
    config.register_lambda_context(_Context())

    @idempotent_function(
        data_keyword_argument="event",
        persistence_store=persistence,
        config=config,
    )
    def accept(event):
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(event))
        return {"status": "accepted", "event_id": event["id"]}

    _state.update(accept=accept, secret=secret)


def handler(lambda_event):
    """An API Gateway HTTP API (v2) event in, a response out."""
    body = lambda_event["body"]
    signature = lambda_event["headers"].get("stripe-signature", "")
    try:
        event = stripe.Webhook.construct_event(body, signature, _state["secret"])
    except (ValueError, stripe.SignatureVerificationError):
        return {"statusCode": 400, "body": "invalid"}
    result = _state["accept"](event=event.to_dict())
    return {"statusCode": 202, "body": json.dumps(result)}


def _sign(body, secret):
    import hashlib
    import hmac

    timestamp = int(time.time())
    mac = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def _one(body):
    # The request is signed before the clock starts, as the Rust side signs before timing.
    lambda_event = {
        "headers": {"stripe-signature": _sign(body, _state["secret"])},
        "body": body,
    }
    started = time.perf_counter()
    response = handler(lambda_event)
    return (time.perf_counter() - started) * 1000.0, response["statusCode"]


def _worker(bodies):
    # The first request of each worker warms its connections and is not counted.
    return [_one(body) for body in bodies][1:]


def main():
    job = json.load(sys.stdin)
    concurrency = max(1, int(job["concurrency"]))
    bodies = job["bodies"]
    init = (job["table"], job["queue_url"], job["secret"])
    shards = [bodies[i::concurrency] for i in range(concurrency)]
    if concurrency == 1:
        _init(*init)
        results = [_worker(bodies)]
    else:
        with Pool(concurrency, initializer=_init, initargs=init) as pool:
            results = pool.map(_worker, shards, chunksize=1)
    latencies, statuses = [], {}
    for shard in results:
        for latency, status in shard:
            latencies.append(latency)
            statuses[str(status)] = statuses.get(str(status), 0) + 1
    json.dump({"latencies_ms": latencies, "statuses": statuses, "pid": os.getpid()}, sys.stdout)


if __name__ == "__main__":
    main()

"""Prefect's fixed cost, for comparison with a nightly run that has nothing to do: import Prefect,
run one flow with one task (against the temporary server, as `cartwatch nightly` does), exit."""

from prefect import flow, task


@task
def nothing() -> int:
    return 0


@flow(name="cartwatch-bench-probe")
def probe() -> int:
    return nothing()


if __name__ == "__main__":
    probe()

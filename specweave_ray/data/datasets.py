"""Synthetic data sets with realistic structure for the worked examples, tests and benchmarks.

Each generator is deterministic by ``seed``, fully vectorised (100k rows in a few tens of
milliseconds) and returns a plain :class:`pandas.DataFrame` whose last column is the target.

* :func:`make_fraud` — card transactions, binary target ``is_fraud`` (rare, default 0.3%).
* :func:`make_ltv` — customer cohorts, regression target ``ltv`` in dollars (right-skewed).

Example:
    >>> from specweave_ray.data.datasets import generate
    >>> df = generate("fraud", n_rows=1_000, seed=1)
    >>> df.shape[0], "is_fraud" in df.columns
    (1000, True)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from specweave_ray.exceptions import DataError

__all__ = ["DATASETS", "generate", "make_fraud", "make_ltv"]

_MERCHANTS = np.array(
    ["grocery", "restaurants", "fuel", "online_services", "electronics", "travel", "gaming",
     "pharmacy", "apparel"]
)
_MERCHANT_P = np.array([0.24, 0.17, 0.12, 0.13, 0.07, 0.05, 0.05, 0.08, 0.09])
# log-dollar mean of a purchase per merchant category (grocery ~ $40, travel ~ $330).
_MERCHANT_LOG_MU = np.array([3.7, 3.4, 3.8, 2.9, 5.0, 5.8, 3.0, 3.2, 4.2])
_HIGH_RISK = np.isin(_MERCHANTS, ["electronics", "travel", "gaming"])

_CHANNELS = np.array(["organic", "paid_search", "social", "referral", "affiliate", "email"])
_CHANNEL_P = np.array([0.30, 0.25, 0.18, 0.10, 0.09, 0.08])
_CHANNEL_EFFECT = np.array([0.10, 0.0, -0.25, 0.30, -0.35, 0.15])
_COUNTRIES = np.array(["US", "GB", "DE", "FR", "CA", "AU", "BR", "IN"])
_COUNTRY_P = np.array([0.40, 0.12, 0.11, 0.08, 0.08, 0.06, 0.08, 0.07])
_COUNTRY_EFFECT = np.array([0.15, 0.05, 0.10, 0.0, 0.05, 0.10, -0.35, -0.55])
_DEVICES = np.array(["ios", "android", "web"])
_DEVICE_P = np.array([0.38, 0.37, 0.25])


def _check_size(n_rows: int, *, minimum: int = 1) -> None:
    if isinstance(n_rows, bool) or not isinstance(n_rows, (int, np.integer)) or n_rows < minimum:
        raise DataError(f"n_rows must be an integer >= {minimum}, got {n_rows!r}")


def _inject_missing(
    rng: np.random.Generator, values: np.ndarray, *, share: float
) -> np.ndarray:
    """Return ``values`` as float with about ``share`` of the entries set to NaN."""
    out = values.astype(np.float64)
    out[rng.random(out.shape[0]) < share] = np.nan
    return out


def make_fraud(
    n_rows: int = 100_000, *, positive_rate: float = 0.003, seed: int = 0
) -> pd.DataFrame:
    """Card transactions with a rare fraud label.

    Fraud comes from a latent risk score with a few interactions — large purchases at night in
    electronics/travel/gaming, foreign card-not-present purchases, new accounts with bursts of
    transactions, purchases far from home — plus logistic noise. The label is 1 for the rows whose
    noisy score is above its ``1 - positive_rate`` quantile, so the positive rate is exact up to
    rounding. The signal is learnable (gradient boosting reaches ROC AUC ≈ 0.9) but no single
    column separates the classes alone. About 1% of ``customer_age`` and
    ``distance_from_home_km`` is missing.

    Args:
        n_rows: number of transactions.
        positive_rate: share of fraudulent rows, in (0, 0.5].
        seed: seed of the random generator; the same seed gives the same frame.

    Returns:
        A frame with the feature columns and the 0/1 target ``is_fraud`` (last column).

    Raises:
        DataError: ``n_rows`` or ``positive_rate`` is out of range.
    """
    _check_size(n_rows, minimum=10)
    if not 0.0 < positive_rate <= 0.5:
        raise DataError(f"positive_rate must be in (0, 0.5], got {positive_rate!r}")
    rng = np.random.default_rng(seed)
    n = int(n_rows)

    merchant = rng.choice(len(_MERCHANTS), size=n, p=_MERCHANT_P)
    amount = np.round(np.exp(_MERCHANT_LOG_MU[merchant] + rng.normal(0.0, 0.85, n)), 2)
    # Time of day: a daytime bump and an evening bump, few purchases at night.
    hour = np.where(
        rng.random(n) < 0.55, rng.normal(13.0, 3.0, n), rng.normal(19.5, 2.5, n)
    )
    hour = np.mod(np.round(hour), 24).astype(np.int64)
    day_of_week = rng.integers(0, 7, n)
    customer_age = np.clip(np.round(rng.gamma(4.0, 6.5, n) + 18), 18, 95)
    account_age_days = np.round(rng.exponential(900.0, n)).astype(np.int64) + 1
    distance = np.round(rng.lognormal(1.8, 1.3, n), 1)
    card_present = (rng.random(n) < np.where(merchant == 3, 0.05, 0.7)).astype(np.int64)
    foreign = (rng.random(n) < 0.06 + 0.2 * (merchant == 5)).astype(np.int64)
    n_tx_last_24h = rng.poisson(1.5, n) + rng.poisson(4.0, n) * (rng.random(n) < 0.05)

    night = (hour <= 5) | (hour >= 23)
    high_risk = _HIGH_RISK[merchant]
    log_amount_z = (np.log(amount) - 3.9) / 1.2
    new_account = account_age_days < 30
    score = (
        0.45 * log_amount_z
        + 1.6 * (night & high_risk) * np.clip(log_amount_z + 1.0, 0.0, None)
        + 0.7 * night
        + 1.9 * (foreign & (card_present == 0))
        + 0.5 * foreign
        + 1.7 * new_account * np.clip(n_tx_last_24h - 2, 0, 6) / 3.0
        + 0.6 * new_account
        + 0.35 * np.log1p(distance)
        - 0.6 * card_present
        + 0.5 * (customer_age > 70)
    )
    noisy = score + rng.logistic(0.0, 0.7, n)
    cutoff = np.quantile(noisy, 1.0 - positive_rate)
    is_fraud = (noisy > cutoff).astype(np.int64)

    return pd.DataFrame(
        {
            "amount": amount,
            "merchant_category": pd.array(_MERCHANTS[merchant], dtype="str"),
            "hour": hour,
            "day_of_week": day_of_week,
            "customer_age": _inject_missing(rng, customer_age, share=0.01),
            "account_age_days": account_age_days,
            "distance_from_home_km": _inject_missing(rng, distance, share=0.01),
            "n_tx_last_24h": n_tx_last_24h.astype(np.int64),
            "card_present": card_present,
            "foreign": foreign,
            "is_fraud": is_fraud,
        }
    )


def make_ltv(n_rows: int = 20_000, *, seed: int = 0) -> pd.DataFrame:
    """Customer cohorts with a two-year lifetime value in dollars.

    ``ltv`` is log-normal around a non-linear function of the early behaviour (first order value,
    orders in the first 90 days with diminishing returns, cadence, subscription, support
    friction, channel and country effects, a holiday-cohort dip). ``avg_days_between_orders``
    is missing for customers with a single order, as it would be in a real export.

    Args:
        n_rows: number of customers.
        seed: seed of the random generator; the same seed gives the same frame.

    Returns:
        A frame with the feature columns and the target ``ltv`` (last column).

    Raises:
        DataError: ``n_rows`` is out of range.
    """
    _check_size(n_rows)
    rng = np.random.default_rng(seed)
    n = int(n_rows)

    month_index = rng.integers(0, 24, n)  # 2024-01 .. 2025-12
    year, month = 2024 + month_index // 12, month_index % 12 + 1
    signup_month = np.char.add(
        np.char.add(year.astype(str), "-"), np.char.zfill(month.astype(str), 2)
    )
    channel = rng.choice(len(_CHANNELS), size=n, p=_CHANNEL_P)
    country = rng.choice(len(_COUNTRIES), size=n, p=_COUNTRY_P)
    device = rng.choice(len(_DEVICES), size=n, p=_DEVICE_P)
    customer_age = np.clip(np.round(rng.normal(38.0, 12.0, n)), 18, 85).astype(np.int64)
    engagement = rng.normal(0.0, 1.0, n)  # latent, only seen through behaviour
    first_order_value = np.round(
        np.exp(3.8 + 0.25 * engagement + 0.3 * (device == 0) + rng.normal(0.0, 0.5, n)), 2
    )
    orders_first_90d = 1 + rng.poisson(np.exp(0.3 + 0.6 * engagement + _CHANNEL_EFFECT[channel]))
    gap = np.round(np.clip(90.0 / orders_first_90d * rng.uniform(0.5, 1.1, n), 1.0, 90.0), 1)
    avg_days_between_orders = np.where(orders_first_90d > 1, gap, np.nan)
    is_subscriber = (rng.random(n) < 1 / (1 + np.exp(1.5 - 0.8 * engagement))).astype(np.int64)
    used_discount = (rng.random(n) < 0.35 + 0.2 * (channel == 4)).astype(np.int64)
    support_tickets = rng.poisson(0.4 + 0.15 * orders_first_90d)

    holiday_cohort = np.isin(month, [11, 12])
    log_ltv = (
        0.75 * np.log(first_order_value)
        + 1.1 * np.log1p(orders_first_90d)
        - 0.18 * np.log1p(np.nan_to_num(avg_days_between_orders, nan=90.0))
        + 0.55 * is_subscriber
        + 0.25 * is_subscriber * np.log1p(orders_first_90d)
        - 0.22 * np.minimum(support_tickets, 4)
        + 0.1 * (support_tickets == 1)
        + _CHANNEL_EFFECT[channel]
        + _COUNTRY_EFFECT[country]
        - 0.25 * holiday_cohort
        - 0.2 * used_discount
        - 0.004 * (customer_age - 40) ** 2 / 10
        + 1.4
    )
    ltv = np.round(np.exp(log_ltv + rng.normal(0.0, 0.35, n)), 2)

    return pd.DataFrame(
        {
            "signup_month": pd.array(signup_month, dtype="str"),
            "acquisition_channel": pd.array(_CHANNELS[channel], dtype="str"),
            "country": pd.array(_COUNTRIES[country], dtype="str"),
            "device": pd.array(_DEVICES[device], dtype="str"),
            "customer_age": customer_age,
            "first_order_value": first_order_value,
            "orders_first_90d": orders_first_90d.astype(np.int64),
            "avg_days_between_orders": avg_days_between_orders,
            "support_tickets": support_tickets.astype(np.int64),
            "is_subscriber": is_subscriber,
            "used_discount": used_discount,
            "ltv": ltv,
        }
    )


DATASETS: dict[str, Callable[..., pd.DataFrame]] = {"fraud": make_fraud, "ltv": make_ltv}


def generate(name: str, **kwargs: object) -> pd.DataFrame:
    """Generate the data set registered as ``name`` in :data:`DATASETS`.

    Args:
        name: a key of :data:`DATASETS` (``"fraud"``, ``"ltv"``).
        **kwargs: passed to the generator (``n_rows``, ``seed``, ...).

    Returns:
        The generated frame.

    Raises:
        DataError: ``name`` is unknown (the message lists the known names) or an argument is
            invalid.
    """
    try:
        maker = DATASETS[name]
    except (KeyError, TypeError) as err:
        raise DataError(
            f"unknown data set {name!r}; known data sets: {', '.join(sorted(DATASETS))}"
        ) from err
    try:
        return maker(**kwargs)
    except TypeError as err:
        raise DataError(f"invalid arguments for data set {name!r}: {err}") from err

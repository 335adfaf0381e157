"""Synthetic data sets with realistic structure for the worked examples, tests and benchmarks.

Each generator is deterministic by ``seed``, fully vectorised (100k rows in a few tens of
milliseconds) and returns a plain :class:`pandas.DataFrame` whose last column is the target.

* :func:`make_fraud` — card transactions, binary target ``is_fraud`` (rare, default 0.3%).
* :func:`make_ltv` — customer cohorts, regression target ``ltv`` in dollars (right-skewed).
* :func:`make_interactions` — user × item interactions (``user_id, item_id, rating,
  timestamp``) from latent tastes, popularity skew and drifting timestamps; no target column
  (the recommendation problem type's relevance is the interaction itself, or a rating threshold).
* :func:`make_sales` — weekly unit sales of stores × products (``series_id, week, holiday,
  promo, sales``): trend, yearly seasonality, holiday and promotion lifts, persistent demand
  shocks and noise; the forecasting example.

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

__all__ = ["DATASETS", "generate", "make_fraud", "make_interactions", "make_ltv", "make_sales"]

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


def _check_count(name: str, value: object, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise DataError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def make_interactions(
    n_interactions: int = 60_000,
    *,
    n_users: int = 3_000,
    n_items: int = 1_500,
    n_factors: int = 8,
    affinity: float = 7.0,
    popularity_exponent: float = 1.0,
    drift: float = 0.5,
    min_per_user: int = 5,
    seed: int = 0,
    n_rows: int | None = None,
) -> pd.DataFrame:
    """Implicit-feedback interactions with latent tastes, a popularity skew and time drift.

    Every user and item has a latent factor vector (items cluster around ``n_factors`` topics,
    users lean towards a few of them). A user picks distinct items with probability
    ∝ ``popularity ** popularity_exponent × exp(affinity × taste·item)``, popularity being Zipf
    over a random item order, so the head items are popular with everyone and the rest is found
    through taste. How many items a user picks is log-normal (a few heavy users, at least
    ``min_per_user`` each). Each user's interactions are spread over a window of 2025, and the
    later ones drift: they lean towards a direction of taste the user had not shown yet (by
    ``drift``), so the last interactions are a little harder to predict than the first, as
    they are in real logs. ``rating`` (1–5) grows with the user's affinity for the item.

    Sampling without replacement is the Gumbel top-k trick (the ``n`` largest of
    ``log p + Gumbel noise`` are a draw of ``n`` distinct items from ``p``), done in blocks of
    users, so a million interactions over 10k items take a few seconds.

    Args:
        n_interactions: number of rows (distinct user–item pairs).
        n_users: number of users.
        n_items: number of items.
        n_factors: size of the latent vectors (the number of topics).
        affinity: weight of taste against popularity; 0 gives a pure popularity world.
        popularity_exponent: weight of the Zipf popularity; 0 removes the skew.
        drift: how much the later interactions lean towards a new direction of taste.
        min_per_user: fewest interactions a user has.
        seed: seed of the random generator; the same seed gives the same frame.
        n_rows: alias of ``n_interactions`` (the pipeline config's ``rows``).

    Returns:
        A frame ``user_id`` (int), ``item_id`` (int), ``rating`` (int 1–5), ``timestamp``
        (datetime), sorted by user then time.

    Raises:
        DataError: a size is out of range, or the catalogue is too small for the interactions
            asked for.

    Example:
        >>> df = make_interactions(5_000, n_users=200, n_items=300, seed=1)
        >>> list(df.columns), len(df)
        (['user_id', 'item_id', 'rating', 'timestamp'], 5000)
    """
    n_total = _check_count("n_interactions", n_interactions if n_rows is None else n_rows, minimum=1)
    n_users = _check_count("n_users", n_users, minimum=1)
    n_items = _check_count("n_items", n_items, minimum=2)
    n_factors = _check_count("n_factors", n_factors, minimum=1)
    min_per_user = _check_count("min_per_user", min_per_user, minimum=1)
    for name, value in (("affinity", affinity), ("popularity_exponent", popularity_exponent), ("drift", drift)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1e3:
            raise DataError(f"{name} must be a number >= 0, got {value!r}")
    cap = max(1, n_items // 2)  # nobody interacts with more than half the catalogue
    if n_total < n_users * min_per_user or n_total > n_users * cap:
        raise DataError(
            f"n_interactions={n_total} cannot be spread over {n_users} users with {min_per_user} to "
            f"{cap} items each (n_items={n_items}); ask for between {n_users * min_per_user} and "
            f"{n_users * cap}, or change n_users/n_items"
        )
    rng = np.random.default_rng(seed)

    topics = rng.normal(0.0, 1.0, (n_factors, n_factors))
    item_topic = rng.integers(0, n_factors, n_items)
    item_f = topics[item_topic] + rng.normal(0.0, 0.6, (n_items, n_factors))
    item_f /= np.linalg.norm(item_f, axis=1, keepdims=True)
    # a user's taste: a mix of two or three topics
    mix = rng.dirichlet(np.full(n_factors, 0.3), n_users)
    user_f = mix @ topics + rng.normal(0.0, 0.3, (n_users, n_factors))
    user_f /= np.linalg.norm(user_f, axis=1, keepdims=True)
    drift_dir = rng.normal(0.0, 1.0, (n_users, n_factors))
    drift_dir /= np.linalg.norm(drift_dir, axis=1, keepdims=True)
    rank = rng.permutation(n_items) + 1
    log_pop = -np.log(rank + 2.0)  # Zipf, softened at the very head

    counts = _spread(rng, n_total, n_users, min_per_user, cap)
    users = np.repeat(np.arange(n_users), counts)
    items = np.empty(n_total, dtype=np.int64)
    block = max(1, 2_000_000 // n_items)
    start = 0
    base = (popularity_exponent * log_pop).astype(np.float32)
    item_f32, user_f32 = item_f.astype(np.float32), user_f.astype(np.float32)
    for lo in range(0, n_users, block):
        hi = min(n_users, lo + block)
        # log(Exp(1)) is minus a Gumbel variable: the n smallest keys are the n items drawn
        keys = rng.standard_exponential((hi - lo, n_items), dtype=np.float32)
        with np.errstate(divide="ignore"):
            np.log(keys, out=keys)
        keys -= base
        keys -= np.float32(affinity) * (user_f32[lo:hi] @ item_f32.T)
        for i, row in enumerate(keys):
            n = counts[lo + i]
            items[start:start + n] = np.argpartition(row, n - 1)[:n]
            start += n
    # later interactions lean towards the drift direction
    order_key = (drift * np.einsum("ij,ij->i", item_f[items], drift_dir[users])
                 + rng.normal(0.0, 0.5, n_total))

    aff = np.einsum("ij,ij->i", user_f[users], item_f[items])
    noisy = affinity * aff + rng.normal(0.0, 0.6, n_total)
    cuts = np.quantile(noisy, [0.10, 0.25, 0.50, 0.78])
    rating = 1 + np.searchsorted(cuts, noisy)

    # each user's window inside 2025; their interactions spread over it in order_key's order
    year = 365 * 86_400
    span = rng.uniform(0.15, 1.0, n_users) * year
    begin = rng.uniform(0.0, 1.0, n_users) * (year - span)
    order = np.lexsort((order_key, users))  # users are grouped already: time order within each
    items, rating = items[order], rating[order]
    position = rng.random(n_total)
    position = position[np.lexsort((position, users))]  # sorted uniforms per user
    seconds = begin[users] + position * span[users]
    timestamp = pd.Timestamp("2025-01-01") + pd.to_timedelta(np.round(seconds), unit="s")
    return pd.DataFrame(
        {
            "user_id": users + 1,
            "item_id": items + 1,
            "rating": rating.astype(np.int64),
            "timestamp": timestamp.astype("datetime64[s]"),
        }
    )


def _spread(rng: np.random.Generator, total: int, n_users: int, minimum: int, cap: int) -> np.ndarray:
    """Interactions per user: ``minimum`` each plus a log-normal share of the rest, ≤ ``cap``,
    summing to ``total`` exactly."""
    counts = np.full(n_users, minimum, dtype=np.int64)
    weights = rng.lognormal(0.0, 1.0, n_users)
    left = total - counts.sum()
    while left > 0:
        room = counts < cap
        share = np.zeros(n_users)
        share[room] = weights[room] / weights[room].sum()
        add = np.minimum(rng.multinomial(left, share), cap - counts)
        counts += add
        left = total - counts.sum()
    return counts


def _holiday_weeks(weeks: pd.DatetimeIndex) -> np.ndarray:
    """1 for a week (ending on its Sunday) holding Thanksgiving (the 4th Thursday of November),
    Christmas Day, New Year's Day or July 4th; these move within the week-of-year calendar from
    year to year, as real holidays do."""
    out = np.zeros(len(weeks), dtype=np.int64)
    for i, end in enumerate(weeks):
        days = pd.date_range(end - pd.Timedelta(days=6), end, freq="D")
        fixed = ((days.month == 12) & (days.day == 25)) | ((days.month == 1) & (days.day == 1)) | \
            ((days.month == 7) & (days.day == 4))
        thanksgiving = (days.month == 11) & (days.dayofweek == 3) & (days.day >= 22) & (days.day <= 28)
        out[i] = int((fixed | thanksgiving).any())
    return out


def make_sales(n_stores: int = 4, n_products: int = 5, *, n_weeks: int = 208, start: str = "2022-01-02",
               seed: int = 0, n_rows: int | None = None) -> pd.DataFrame:
    """Weekly unit sales of every store × product, ``n_weeks`` weeks ending on Sundays.

    Each series is ``level × trend × season × holiday × promo × shock × noise``: a level drawn
    per store and product (~40–600 units a week), a yearly growth of about +5% (−5% … +15%),
    a yearly season (a winter peak and a smaller summer one, shifted per product), a lift of
    15–40% in weeks holding a holiday (Thanksgiving, Christmas, New Year, July 4th: they move
    through the week-of-year calendar), promotions (about 1 week in 15, +10–30%, announced in
    advance so the ``promo`` column is known), demand shocks that persist (AR(1) on the log
    scale, φ 0.6) and multiplicative noise (4–9%). Sales are whole units.

    Args:
        n_rows: Accepted for the config's ``data.rows``: the number of weeks becomes
            ``n_rows // (n_stores * n_products)``.

    Raises:
        DataError: a count is not a positive integer or the series would be under 3 weeks.
    """
    n_stores = _check_count("n_stores", n_stores, minimum=1)
    n_products = _check_count("n_products", n_products, minimum=1)
    if n_rows is not None:
        n_weeks = _check_count("n_rows", n_rows, minimum=1) // (n_stores * n_products)
    n_weeks = _check_count("n_weeks", n_weeks, minimum=3)
    rng = np.random.default_rng(seed)
    weeks = pd.date_range(start, periods=n_weeks, freq="W-SUN")
    t = np.arange(n_weeks) / 52.0
    holiday = _holiday_weeks(weeks)
    phase = 2 * np.pi * weeks.dayofyear.to_numpy() / 365.25
    frames = []
    store_level = rng.lognormal(0.0, 0.4, size=n_stores)
    product_level = rng.lognormal(np.log(150.0), 0.6, size=n_products)
    product_shift = rng.uniform(-0.4, 0.4, size=n_products)
    for s in range(n_stores):
        for p in range(n_products):
            level = store_level[s] * product_level[p]
            growth = rng.normal(0.05, 0.04)
            amp_winter, amp_summer = rng.uniform(0.10, 0.30), rng.uniform(0.03, 0.12)
            season = amp_winter * np.cos(phase - 2 * np.pi * (350 / 365.25) + product_shift[p]) + \
                amp_summer * np.cos(2 * phase - 2 * np.pi * (190 / 365.25) * 2)
            promo = (rng.random(n_weeks) < 1 / 15).astype(np.int64)
            shock = np.zeros(n_weeks)
            eps = rng.normal(0.0, 0.03, size=n_weeks)
            for i in range(1, n_weeks):
                shock[i] = 0.6 * shock[i - 1] + eps[i]
            log_sales = (np.log(level) + growth * t + season + holiday * rng.uniform(0.15, 0.40)
                         + promo * rng.uniform(0.10, 0.30) + shock + rng.normal(0.0, rng.uniform(0.04, 0.09), n_weeks))
            frames.append(pd.DataFrame({"series_id": f"store-{s + 1:02d}/product-{p + 1:02d}", "week": weeks,
                                        "holiday": holiday, "promo": promo,
                                        "sales": np.maximum(np.round(np.exp(log_sales)), 0.0)}))
    return pd.concat(frames, ignore_index=True)


DATASETS: dict[str, Callable[..., pd.DataFrame]] = {
    "fraud": make_fraud, "ltv": make_ltv, "interactions": make_interactions, "sales": make_sales,
}


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

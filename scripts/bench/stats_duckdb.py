"""The peer of `steam-recsys stats`: the same SQL (game_stats and user_stats of one partition of the
conformed layer) in DuckDB over the same Parquet, each result written to a Parquet file (zstd).

    stats_duckdb.py CONFORMED_DIR YYYY-MM-DD OUT_DIR
"""
import os, sys, time

import duckdb

Z = 1.959963984540054


def share(z=Z):
    p = "CAST(g.recommended AS DOUBLE) / g.rated"
    z2 = z * z
    return f"""CASE WHEN g.rated > 0 THEN {p} END AS recommendation_share,
      CASE WHEN g.rated > 0 THEN
        ({p} + {z2} / (2.0 * g.rated)
          - {z} * sqrt(({p}) * (1.0 - {p}) / g.rated + {z2} / (4.0 * g.rated * g.rated)))
        / (1.0 + {z2} / g.rated)
      END AS recommendation_share_lower"""


def main(conformed, date, out):
    started = time.time()
    con = duckdb.connect()
    for t in ("games_reviews", "games_description", "users_mapping"):
        con.execute(f"""CREATE VIEW {t} AS SELECT * FROM read_parquet(
            '{conformed}/{t}/*/*.parquet', hive_partitioning = true)""")
    d = f"record_created_dt = DATE '{date}'"
    games = f"""WITH r AS (
        SELECT game_id, CAST(hours_played AS DOUBLE) AS hours, recommendation, date
        FROM games_reviews WHERE {d}),
      g AS (
        SELECT game_id, count(*) AS reviews, count(recommendation) AS rated,
               sum(CASE WHEN recommendation THEN 1 ELSE 0 END) AS recommended,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY hours) AS median_hours,
               percentile_cont(0.9) WITHIN GROUP (ORDER BY hours) AS p90_hours,
               min(date) AS first_review, max(date) AS last_review
        FROM r GROUP BY game_id)
      SELECT g.game_id, d.game_name, g.reviews, g.recommended, {share()},
             g.median_hours, g.p90_hours, g.first_review, g.last_review
      FROM g LEFT JOIN (SELECT game_id, game_name FROM games_description WHERE {d}) d
        ON g.game_id = d.game_id
      ORDER BY g.game_id"""
    users = f"""WITH g AS (
        SELECT user_id, count(*) AS reviews, count(recommendation) AS rated,
               sum(CASE WHEN recommendation THEN 1 ELSE 0 END) AS recommended,
               sum(CAST(hours_played AS DOUBLE)) AS total_hours
        FROM games_reviews WHERE {d} GROUP BY user_id)
      SELECT g.user_id, u.username, g.reviews, g.recommended, {share()}, g.total_hours
      FROM g LEFT JOIN (SELECT user_id, username FROM users_mapping WHERE {d}) u
        ON g.user_id = u.user_id
      ORDER BY g.user_id"""
    os.makedirs(out, exist_ok=True)
    for name, sql in (("game_stats", games), ("user_stats", users)):
        con.execute(f"COPY ({sql}) TO '{out}/{name}.parquet' (FORMAT parquet, COMPRESSION zstd)")
    print(f"duckdb stats {time.time() - started:.2f} s", file=sys.stderr)


if __name__ == "__main__":
    main(*sys.argv[1:4])

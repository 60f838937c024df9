"""The peer of `steam-recsys sql … --format csv`: one query in DuckDB over the conformed tables of a
local lake (each table a view over its Hive-partitioned Parquet, record_created_dt a column), the
result printed as CSV with a header.

    sql_duckdb.py CONFORMED_DIR "QUERY"
"""
import csv, os, sys

import duckdb


def main(conformed, query):
    con = duckdb.connect()
    for t in sorted(os.listdir(conformed)):
        if os.path.isdir(os.path.join(conformed, t)) and not t.startswith((".", "_")):
            con.execute(f"""CREATE VIEW {t} AS SELECT * FROM read_parquet(
                '{conformed}/{t}/*/*.parquet', hive_partitioning = true)""")
    result = con.execute(query)
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow([d[0] for d in result.description])
    while rows := result.fetchmany(8192):
        out.writerows(rows)


if __name__ == "__main__":
    main(*sys.argv[1:3])

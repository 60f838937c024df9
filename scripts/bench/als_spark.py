"""Spark ML ALS on a given split, as the reference trained it (rank 10, 10 iterations, regParam 0.1,
coldStartStrategy drop, seed 42), evaluated like `steam-recsys train --test`: RMSE on the training
and the held-out ratings. Prints one line: train_rmse test_rmse test_predicted seconds.

    python als_spark.py SPLIT_DIR      # SPLIT_DIR/train.parquet and SPLIT_DIR/test.parquet
"""
import sys, time

from pyspark.sql import SparkSession, functions as F
from pyspark.ml.recommendation import ALS
from pyspark.ml.evaluation import RegressionEvaluator

split = sys.argv[1]
t0 = time.perf_counter()
spark = (SparkSession.builder.master("local[2]").appName("bench-als")
         .config("spark.ui.showConsoleProgress", "false").getOrCreate())
spark.sparkContext.setLogLevel("ERROR")
read = lambda name: spark.read.parquet(f"{split}/{name}.parquet").select(
    "user_id", "game_id", F.col("recommendation").cast("int").alias("r"))
train, test = read("train"), read("test")
model = ALS(maxIter=10, regParam=0.1, userCol="user_id", itemCol="game_id", ratingCol="r",
            coldStartStrategy="drop", seed=42).fit(train)
rmse = RegressionEvaluator(metricName="rmse", labelCol="r", predictionCol="prediction")
predicted = model.transform(test).cache()
print(f"{rmse.evaluate(model.transform(train)):.6f} {rmse.evaluate(predicted):.6f} "
      f"{predicted.count()} {time.perf_counter() - t0:.3f}")
spark.stop()

#!/bin/sh
# Runs once, when the postgres volume is first initialised: one database per concern, all
# owned by POSTGRES_USER. Dagster, the app tables, MLflow and the paper broker never share
# tables, so each can be backed up, restored or dropped on its own.
set -eu
for db in "$DAGSTER_POSTGRES_DB" "$APP_POSTGRES_DB" "$MLFLOW_POSTGRES_DB" "$PAPER_BROKER_POSTGRES_DB"; do
  if [ "$db" != "$POSTGRES_DB" ]; then
    echo "creating database $db"
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
      -c "CREATE DATABASE \"$db\" OWNER \"$POSTGRES_USER\";"
  fi
done

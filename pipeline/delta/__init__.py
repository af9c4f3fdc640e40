"""Updates between versions: patch engines, the diff that writes update plans and patches,
and the cheapest-route search that clients and the lookup service share."""

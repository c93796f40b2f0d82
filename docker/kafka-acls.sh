#!/usr/bin/env bash
# The Kafka ACLs of adclick's users (docker/compose.yaml, service kafka-acls; the users
# and passwords come from docker/make-secrets). Each user may do only what its service
# does; the broker refuses everything else (allow.everyone.if.no.acl.found=false):
#
#   adclick_producer  collectors (`adclick tail`, `adclick produce`): write the clicks topic
#   adclick_ingest    read the clicks topic in its consumer group; write the dead letters
#   adclick_closer    write the top-lists topic: the only writer, so no list is forged
#   adclick_api       read the top-lists topic (the subscription feed)
#   adclick_topics    create and describe adclick's topics (`adclick topics`)
#
# Adding an ACL twice changes nothing, so this runs at every `docker compose up`.
set -euo pipefail
acl() {
    /opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9092 \
        --command-config /run/secrets/kafka_admin --add "$@"
}
clicks=$ADCLICK_CLICKS_TOPIC dlq=$ADCLICK_DLQ_TOPIC top=$ADCLICK_TOP_ADS_TOPIC

acl --allow-principal User:adclick_producer --operation Write --operation Describe --topic "$clicks"

acl --allow-principal User:adclick_ingest --operation Read --operation Describe --topic "$clicks"
acl --allow-principal User:adclick_ingest --operation Read --group "$ADCLICK_CONSUMER_GROUP"
acl --allow-principal User:adclick_ingest --operation Write --operation Describe --topic "$dlq"

acl --allow-principal User:adclick_closer --operation Write --operation Describe --topic "$top"

acl --allow-principal User:adclick_api --operation Read --operation Describe --topic "$top"
# Each API process follows the feed in a group of its own (adclick-api-feed-<random>).
acl --allow-principal User:adclick_api --operation Read \
    --group adclick-api-feed- --resource-pattern-type prefixed

for topic in "$clicks" "$dlq" "$top"; do
    acl --allow-principal User:adclick_topics --operation Create --operation Describe \
        --topic "$topic"
done
echo "adclick's Kafka ACLs are in place"

"""Each dispute is one dynamic partition of the six dispute assets; its key is the case id."""

from dagster import DynamicPartitionsDefinition

disputes_partitions = DynamicPartitionsDefinition(name="disputes")

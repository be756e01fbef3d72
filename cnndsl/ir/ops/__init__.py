"""The op declarations, one module per family; `cnndsl.ir.registry` collects them."""

"""Operations over whole files: scans, column appends, combine, subset, aggregate, export."""

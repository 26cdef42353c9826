"""A comparison's pair key is unique per item, not per project, and the item foreign key has no index of its own.

The pair key is sha256 of the prompt key and the sorted pair of text keys, and the prompt key is unique per
project, so one comparison per item and unordered pair is one per project and unordered pair. The unique index
now leads with item_id: an import's new comparisons (of new items, whose ids only grow) are appended at its end
instead of being inserted at random places of a per-project index, and it serves the item foreign key (its
deletes, `items_soft_delete`), whose own index goes. See annotate/importers/README.md.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('annotate', '0005_key_columns_c_collation'),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='comparison',
            name='comparison_unique_pair',
        ),
        migrations.AlterField(
            model_name='comparison',
            name='item',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='comparisons', to='annotate.item'),
        ),
        migrations.AddConstraint(
            model_name='comparison',
            constraint=models.UniqueConstraint(fields=('item', 'pair_key'), name='comparison_unique_pair'),
        ),
    ]

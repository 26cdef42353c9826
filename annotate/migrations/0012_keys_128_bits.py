"""Keys become the first 128 bits of sha256, as 32 hex characters (annotate/keys.py says why).

Stored keys are shortened in place: a prompt or text key is its old digest's first 32 characters; a pair key is
recomputed from the shortened keys exactly as `annotate.keys.pair_key` does (sha256 of "prompt:low:high",
the text keys in byte order). One way only: the full digests cannot be had back.
"""

from django.db import migrations, models

SHORTEN = [
    "UPDATE annotate_item SET prompt_key = left(prompt_key, 32) WHERE length(prompt_key) > 32",
    "UPDATE annotate_response SET text_key = left(text_key, 32) WHERE length(text_key) > 32",
    """
    UPDATE annotate_comparison c
       SET pair_key = left(encode(sha256(convert_to(
               i.prompt_key || ':' || least(ra.text_key, rb.text_key) COLLATE "C"
               || ':' || greatest(ra.text_key, rb.text_key) COLLATE "C", 'UTF8')), 'hex'), 32)
      FROM annotate_item i, annotate_response ra, annotate_response rb
     WHERE i.id = c.item_id AND ra.id = c.response_a_id AND rb.id = c.response_b_id
       AND length(c.pair_key) > 32
    """,
]


class Migration(migrations.Migration):

    dependencies = [
        ('annotate', '0011_assignment_chosen_by'),
    ]

    operations = [
        migrations.RunSQL(SHORTEN),
        migrations.AlterField(
            model_name='comparison',
            name='pair_key',
            field=models.CharField(help_text='Key of the prompt key + the sorted pair of text keys.', max_length=64),
        ),
        migrations.AlterField(
            model_name='item',
            name='prompt_key',
            field=models.CharField(help_text='Key of the canonical JSON of the messages (curation.canonical).', max_length=64),
        ),
        migrations.AlterField(
            model_name='response',
            name='text_key',
            field=models.CharField(help_text='Key of the exact text (curation.canonical).', max_length=64),
        ),
    ]

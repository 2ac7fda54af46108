"""Builds semantic_cache_pairs.jsonl: true paraphrases and near-miss perturbations in eight
families, hand-written triples plus template swaps. Run: python -m sessions.data.make_semantic_cache_pairs

Each triple is (a, b that means the same, b that does not). Each line of the output is
{"a", "b", "same", "family"}; family is null for the general pairs that no guard targets."""
from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

ENTITY = [
    ("What is the capital of Australia?", "Which city is Australia's capital?", "What is the capital of Austria?"),
    ("Who wrote Pride and Prejudice?", "Who is the author of Pride and Prejudice?", "Who wrote Sense and Sensibility?"),
    ("How tall is the Eiffel Tower?", "What is the height of the Eiffel Tower?", "How tall is the Empire State Building?"),
    ("When did Napoleon die?", "What was the date of Napoleon's death?", "When did Charlemagne die?"),
    ("How do I install pandas with pip?", "What's the pip command to install pandas?", "How do I install numpy with pip?"),
    ("What does the Python GIL do?", "What is the purpose of the GIL in Python?", "What does the Ruby GIL do?"),
    ("What currency is used in Japan?", "Which currency does Japan use?", "What currency is used in China?"),
    ("Summarize the plot of Hamlet.", "Give me a summary of Hamlet's plot.", "Summarize the plot of Macbeth."),
    ("Who founded Microsoft?", "Who were the founders of Microsoft?", "Who founded Apple?"),
    ("What is the population of Canada?", "How many people live in Canada?", "What is the population of Mexico?"),
    ("Is Rust memory safe?", "Does Rust guarantee memory safety?", "Is Go memory safe?"),
    ("What language is spoken in Brazil?", "Which language do people speak in Brazil?", "What language is spoken in Argentina?"),
    ("How far is the Moon from Earth?", "What's the distance between Earth and the Moon?", "How far is Mars from Earth?"),
    ("What are Tesla's main products?", "Which products does Tesla mainly sell?", "What are Ford's main products?"),
    ("Who painted the Mona Lisa?", "Which artist painted the Mona Lisa?", "Who painted the Sistine Chapel ceiling?"),
    ("How do I center a div in CSS?", "What's the CSS way to center a div?", "How do I center a div in Tailwind?"),
    ("What is Kubernetes used for?", "What do people use Kubernetes for?", "What is Terraform used for?"),
    ("Explain how PostgreSQL handles indexes.", "How does PostgreSQL deal with indexes?", "Explain how MySQL handles indexes."),
    ("What is the tallest mountain in Africa?", "Which mountain is the highest in Africa?", "What is the tallest mountain in Europe?"),
    ("Tell me about the history of Rome.", "Give me an overview of Rome's history.", "Tell me about the history of Athens."),
    ("What is the boiling point of ethanol?", "At what temperature does ethanol boil?", "What is the boiling point of methanol?"),
    ("How do I make a margherita pizza?", "What's the recipe for a margherita pizza?", "How do I make a pepperoni pizza?"),
    ("What are the symptoms of diabetes?", "What symptoms does diabetes cause?", "What are the symptoms of asthma?"),
    ("Who is Nvidia's CEO?", "Who is the CEO of Nvidia?", "Who is Intel's CEO?"),
    ("How do I merge two dataframes in pandas?", "What's the way to join two pandas dataframes?", "How do I merge two dataframes in Spark?"),
    ("What's the difference between TCP and UDP?", "How does TCP differ from UDP?", "What's the difference between HTTP and HTTPS?"),
    ("What time zone is Chicago in?", "Which time zone does Chicago use?", "What time zone is Denver in?"),
    ("How did Julius Caesar die?", "What was the cause of Julius Caesar's death?", "How did Augustus die?"),
    ("What is the main ingredient in guacamole?", "What is guacamole mainly made of?", "What is the main ingredient in hummus?"),
    ("Where was Albert Einstein born?", "What is Albert Einstein's birthplace?", "Where was Isaac Newton born?"),
]

FORMAT = [
    ("Explain photosynthesis in three bullet points.", "Give me three bullet points explaining photosynthesis.", "Explain photosynthesis in three paragraphs."),
    ("List the planets of the solar system as JSON.", "Give me the solar system's planets in JSON format.", "List the planets of the solar system as a table."),
    ("Write a haiku about autumn leaves.", "Compose a haiku on autumn leaves.", "Write a limerick about autumn leaves."),
    ("Summarize the French Revolution in one paragraph.", "Give a one-paragraph summary of the French Revolution.", "Summarize the French Revolution in one sentence."),
    ("Give me a Python function that reverses a string.", "Show me a Python function to reverse a string.", "Describe in words, without code, how a Python function reverses a string."),
    ("Give me a recipe for pancakes as a numbered list.", "Write a pancake recipe as a numbered list.", "Give me a recipe for pancakes as a short paragraph."),
    ("Explain quantum entanglement in a tweet.", "Describe quantum entanglement in tweet form.", "Explain quantum entanglement in an essay."),
    ("Convert this data to CSV: name Alice, age 30.", "Turn this into CSV: name Alice, age 30.", "Convert this data to XML: name Alice, age 30."),
    ("Describe the water cycle in a markdown table.", "Make a markdown table describing the water cycle.", "Describe the water cycle in a short poem."),
    ("Write an email asking my manager for a day off.", "Draft an email to my manager requesting a day off.", "Write a text message asking my manager for a day off."),
    ("Give me the pros and cons of electric cars in a table.", "Make a table of the pros and cons of electric cars.", "Give me the pros and cons of electric cars in an essay."),
    ("Explain recursion with an example.", "Explain recursion and show an example.", "Explain recursion without examples."),
    ("Write a short story about a lost robot.", "Tell a short story about a robot that gets lost.", "Write a song about a lost robot."),
    ("Outline the causes of World War I.", "Give an outline of what caused World War I.", "Write an essay on the causes of World War I."),
    ("Give step-by-step instructions to change a tire.", "Provide step-by-step instructions for changing a tire.", "Give a one-line answer on how to change a tire."),
    ("Reply in YAML: what are the primary colors?", "What are the primary colors? Answer in YAML.", "Reply in plain text: what are the primary colors?"),
    ("Describe a cat in exactly 50 words.", "Write a 50-word description of a cat.", "Describe a cat in exactly 100 words."),
    ("Write a formal letter of complaint about a late delivery.", "Compose a formal complaint letter about a delivery that arrived late.", "Write a funny poem complaining about a late delivery."),
    ("Explain the rules of chess as a checklist.", "Give me the rules of chess in checklist form.", "Explain the rules of chess as a diagram."),
    ("Format the following as an HTML list: apples, pears, plums.", "Turn apples, pears, plums into an HTML list.", "Format the following as a markdown list: apples, pears, plums."),
    ("Explain how vaccines work in simple terms.", "Explain simply how vaccines work.", "Explain how vaccines work in technical detail."),
    ("Give me a bullet-point summary of the book 1984.", "Summarize the book 1984 in bullet points.", "Give me a detailed review of the book 1984."),
    ("Write a blog post about sourdough baking.", "Draft a blog article about baking sourdough.", "Write a recipe card for sourdough baking."),
    ("Describe the Roman Empire in a detailed essay.", "Write a detailed essay describing the Roman Empire.", "Describe the Roman Empire in a brief summary."),
    ("Give me a code snippet that reads a file in Go.", "Show a Go code snippet for reading a file.", "Give me a diagram of how Go reads a file."),
]

LANGUAGE = [
    ("What is the capital of Italy?", "Which city is the capital of Italy?", "Qual è la capitale d'Italia?"),
    ("How do I boil an egg?", "What's the way to boil an egg?", "¿Cómo hiervo un huevo?"),
    ("Translate 'good morning' into Spanish.", "How do you say 'good morning' in Spanish?", "Translate 'good morning' into German."),
    ("Where is the nearest train station?", "Where can I find the closest train station?", "Où est la gare la plus proche ?"),
    ("Tell me a fun fact about octopuses.", "Share an interesting fact about octopuses.", "Erzähl mir eine lustige Tatsache über Kraken."),
    ("What is machine learning?", "Can you explain what machine learning is?", "Was ist maschinelles Lernen?"),
    ("Reply in French: what is your favorite color?", "Answer in French: what is your favorite color?", "Reply in Italian: what is your favorite color?"),
    ("How many legs does a spider have?", "How many legs do spiders have?", "Combien de pattes a une araignée ?"),
    ("What is the meaning of life?", "What does life mean?", "¿Cuál es el sentido de la vida?"),
    ("Write a greeting card message in English.", "Write an English message for a greeting card.", "Write a greeting card message in Japanese."),
    ("Explain gravity.", "Could you explain gravity?", "Объясни гравитацию."),
    ("What is a good way to learn to cook?", "How should I go about learning to cook?", "Qual é uma boa maneira de aprender a cozinhar?"),
    ("Translate this sentence to Dutch: I like cheese.", "Put this sentence into Dutch: I like cheese.", "Translate this sentence to Swedish: I like cheese."),
    ("Recommend a good book for a long flight.", "Suggest a good book to read on a long flight.", "Recommande-moi un bon livre pour un long vol."),
    ("What is the speed of light?", "How fast does light travel?", "光の速さはどれくらいですか？"),
    ("Say hello in Korean.", "How do you say hello in Korean?", "Say hello in Chinese."),
    ("Write the answer in Portuguese: what is 2 + 2?", "In Portuguese, what is 2 + 2?", "Write the answer in Spanish: what is 2 + 2?"),
    ("Who invented the telephone?", "Who was the inventor of the telephone?", "Wer hat das Telefon erfunden?"),
    ("Explain what a neural network is.", "What is a neural network? Please explain.", "Explique ce qu'est un réseau de neurones."),
    ("How do I get to the Louvre from the airport?", "What's the route from the airport to the Louvre?", "Comment aller au Louvre depuis l'aéroport ?"),
    ("What's a good name for a golden retriever puppy?", "Suggest a good name for a golden retriever puppy.", "¿Qué buen nombre le pongo a un cachorro golden retriever?"),
    ("Describe the taste of mango.", "What does mango taste like?", "Descrivi il sapore del mango."),
    ("How does the immune system work?", "Explain how the immune system works.", "Как работает иммунная система?"),
    ("What is the population of Germany?", "How many people live in Germany?", "Wie viele Menschen leben in Deutschland?"),
    ("Write a short poem about the sea in German.", "Compose a short German poem about the sea.", "Write a short poem about the sea in Russian."),
]

NEGATION = [
    ("Why should I refrigerate tomatoes?", "What's the reason to refrigerate tomatoes?", "Why shouldn't I refrigerate tomatoes?"),
    ("Which foods contain gluten?", "What foods have gluten in them?", "Which foods don't contain gluten?"),
    ("List countries that use the euro.", "Which countries use the euro?", "List countries that do not use the euro."),
    ("What animals can fly?", "Which animals are able to fly?", "What animals cannot fly?"),
    ("Which programming languages have garbage collection?", "What programming languages are garbage collected?", "Which programming languages have no garbage collection?"),
    ("Should I take ibuprofen with food?", "Is ibuprofen supposed to be taken with food?", "Should I take ibuprofen without food?"),
    ("What are things to do in Paris?", "What can I do in Paris?", "What are things not to do in Paris?"),
    ("Why is water a good conductor of electricity?", "What makes water a good conductor of electricity?", "Why is water not a good conductor of electricity?"),
    ("Which vitamins are fat soluble?", "What vitamins dissolve in fat?", "Which vitamins are not fat soluble?"),
    ("Why do cats like water?", "What makes cats like water?", "Why don't cats like water?"),
    ("What should I pack for a beach vacation?", "What do I need to bring on a beach holiday?", "What should I never pack for a beach vacation?"),
    ("How can I fall asleep quickly?", "What helps me fall asleep fast?", "Why can't I fall asleep quickly?"),
    ("Which birds migrate in winter?", "What birds fly south for the winter?", "Which birds do not migrate in winter?"),
    ("Is it legal to drive barefoot?", "Can you legally drive barefoot?", "Is it illegal to drive barefoot?"),
    ("Write a function that handles empty lists.", "Write a function that works with empty lists.", "Write a function that doesn't handle empty lists."),
    ("Which medications interact with alcohol?", "What medicines have interactions with alcohol?", "Which medications don't interact with alcohol?"),
    ("What happens if I exercise every day?", "What are the effects of exercising every day?", "What happens if I never exercise?"),
    ("Why do some people like cilantro?", "What makes some people enjoy cilantro?", "Why do some people not like cilantro?"),
    ("Can dogs eat grapes?", "Are grapes okay for dogs to eat?", "Why can't dogs eat grapes?"),
    ("Which plants need direct sunlight?", "What plants require direct sunlight?", "Which plants don't need direct sunlight?"),
    ("Is coffee good for your heart?", "Is coffee good for heart health?", "Is coffee not good for your heart?"),
    ("Find the users who have logged in.", "Get the users that have logged in.", "Find the users who have never logged in."),
    ("Show me the tests that pass.", "Which tests pass?", "Show me the tests that don't pass."),
    ("Which countries require a visa for US citizens?", "For US citizens, which countries require a visa?", "Which countries don't require a visa for US citizens?"),
    ("What can I eat on a keto diet?", "Which foods are allowed on a keto diet?", "What can't I eat on a keto diet?"),
]

NUMERIC = [
    ("What is 15% of 80?", "Calculate 15 percent of 80.", "What is 15% of 90?"),
    ("Convert 100 degrees Fahrenheit to Celsius.", "What is 100°F in Celsius?", "Convert 10 degrees Fahrenheit to Celsius."),
    ("How many calories are in two eggs?", "How many calories do 2 eggs have?", "How many calories are in three eggs?"),
    ("Give me 5 ideas for a birthday party.", "Suggest five birthday party ideas.", "Give me 10 ideas for a birthday party."),
    ("What is the square root of 144?", "Compute the square root of 144.", "What is the square root of 169?"),
    ("How many ounces are in 1 pound?", "How many ounces make up one pound?", "How many ounces are in 5 pounds?"),
    ("Is 97 a prime number?", "Is the number 97 prime?", "Is 91 a prime number?"),
    ("What was the population of London in 1900?", "How many people lived in London in 1900?", "What was the population of London in 1950?"),
    ("What's the sum of 234 and 567?", "Add 234 and 567.", "What's the sum of 234 and 576?"),
    ("How much is $20 in euros?", "Convert $20 to euros.", "How much is $200 in euros?"),
    ("Write a 500-word essay on climate change.", "Write an essay of 500 words about climate change.", "Write a 1000-word essay on climate change."),
    ("Plan a 3-day trip to Kyoto.", "Create an itinerary for three days in Kyoto.", "Plan a 7-day trip to Kyoto."),
    ("What is 7 times 8?", "Multiply 7 by 8.", "What is 7 times 9?"),
    ("Which element has atomic number 6?", "What element is atomic number 6?", "Which element has atomic number 8?"),
    ("How many grams of protein should a 70 kg person eat?", "How much protein in grams does a 70 kg person need?", "How many grams of protein should a 90 kg person eat?"),
    ("Round 3.14159 to two decimal places.", "Round 3.14159 to 2 decimals.", "Round 3.14159 to three decimal places."),
    ("Set a timer for 10 minutes.", "Start a 10-minute timer.", "Set a timer for 15 minutes."),
    ("What is the 10th Fibonacci number?", "Give me the tenth Fibonacci number.", "What is the 12th Fibonacci number?"),
    ("A shirt costs $40 with a 25% discount. What's the final price?", "What's the final price of a $40 shirt discounted by 25 percent?", "A shirt costs $40 with a 30% discount. What's the final price?"),
    ("How many seconds are in one hour?", "How many seconds does one hour contain?", "How many seconds are in two hours?"),
    ("Recommend a laptop under $1000.", "Suggest a laptop that costs under $1000.", "Recommend a laptop under $500."),
    ("Generate a random password with 12 characters.", "Create a random 12-character password.", "Generate a random password with 16 characters."),
    ("What's the sum of the first 100 natural numbers?", "Add up the natural numbers from 1 to 100.", "What's the sum of the first 50 natural numbers?"),
    ("What is 2 to the power of 10?", "Compute 2 raised to the power 10.", "What is 2 to the power of 11?"),
    ("Split a bill of $85 among 4 people.", "Divide an $85 bill between 4 people.", "Split a bill of $85 among 5 people."),
    ("How many cups are in a gallon?", "How many cups make one gallon?", "How many cups are in half a gallon?"),
]

POLARITY = [
    ("What are the advantages of nuclear power?", "What are the benefits of nuclear power?", "What are the disadvantages of nuclear power?"),
    ("How can I increase my credit score?", "What can I do to raise my credit score?", "How can I decrease my credit score?"),
    ("What is the best programming language for beginners?", "Which programming language is best for beginners?", "What is the worst programming language for beginners?"),
    ("Which foods raise blood pressure?", "What foods increase blood pressure?", "Which foods lower blood pressure?"),
    ("Sort this list in ascending order: 5, 2, 9.", "Put 5, 2, 9 in ascending order.", "Sort this list in descending order: 5, 2, 9."),
    ("How do I enable dark mode on my iPhone?", "How can I turn on dark mode on an iPhone?", "How do I disable dark mode on my iPhone?"),
    ("What's the fastest way to get to the airport?", "What's the quickest route to the airport?", "What's the slowest way to get to the airport?"),
    ("Why is the stock market going up?", "Why are stocks going up?", "Why is the stock market going down?"),
    ("How do I encrypt a file with GPG?", "What's the way to encrypt a file using GPG?", "How do I decrypt a file with GPG?"),
    ("List the strengths of a monarchy.", "What are the strengths of a monarchy?", "List the weaknesses of a monarchy."),
    ("How do I upload files to S3?", "What's the way to upload files into S3?", "How do I download files from S3?"),
    ("Which countries have the highest life expectancy?", "Where is life expectancy highest?", "Which countries have the lowest life expectancy?"),
    ("How do I add a column to a pandas dataframe?", "How can I insert a new column into a pandas dataframe?", "How do I remove a column from a pandas dataframe?"),
    ("Give arguments for raising the minimum wage.", "What are the arguments for raising the minimum wage?", "Give arguments against raising the minimum wage."),
    ("What makes a good leader?", "Which qualities make someone a good leader?", "What makes a bad leader?"),
    ("Why is my computer running slow?", "What makes my computer slow?", "Why is my computer running fast?"),
    ("Convert this text to uppercase.", "Make this text uppercase.", "Convert this text to lowercase."),
    ("What are the health benefits of running?", "How does running benefit your health?", "What are the health risks of running?"),
    ("How do I open a bank account?", "What do I need to do to open a bank account?", "How do I close a bank account?"),
    ("What causes high blood sugar?", "Why does blood sugar get high?", "What causes low blood sugar?"),
    ("Give me tips for gaining weight.", "How can I go about gaining weight?", "Give me tips for losing weight."),
    ("Is it better to rent or buy a house?", "Should I rent or buy a house?", "Is it better to rent or sell a house?"),
    ("What is the maximum heart rate during exercise?", "What's the highest heart rate during exercise?", "What is the minimum heart rate during exercise?"),
    ("How do I make my Wi-Fi faster?", "How can I get faster Wi-Fi?", "How do I make my Wi-Fi slower?"),
    ("Describe the northern lights.", "What are the northern lights?", "Describe the southern lights."),
    ("Why do people love winter?", "What makes people love winter?", "Why do people hate winter?"),
    ("What are the pros of working from home?", "List the pros of working from home.", "What are the cons of working from home?"),
]

REGISTER = [
    ("Explain black holes to a five-year-old.", "Explain black holes like I'm five.", "Explain black holes to a physics PhD student."),
    ("Write a formal apology to a client for a delayed shipment.", "Compose a formal apology to a client about a delayed shipment.", "Write a casual apology to a client for a delayed shipment."),
    ("Explain how the stock market works in simple terms.", "Explain in simple language how the stock market works.", "Explain how the stock market works for an expert audience."),
    ("Describe the French Revolution in a humorous way.", "Give a funny description of the French Revolution.", "Describe the French Revolution in a serious academic tone."),
    ("Tell me about climate change like a pirate.", "Describe climate change in pirate speak.", "Tell me about climate change like a news anchor."),
    ("Write a professional LinkedIn post about my new job.", "Draft a professional post for LinkedIn announcing my new job.", "Write a casual LinkedIn post about my new job."),
    ("Explain TCP handshakes to a beginner.", "Give a beginner an explanation of TCP handshakes.", "Explain TCP handshakes to a network engineer."),
    ("Rewrite this sentence to sound more polite: give me the report.", "Make this sentence more polite: give me the report.", "Rewrite this sentence to sound more rude: give me the report."),
    ("Respond as Shakespeare: what is love?", "In the style of Shakespeare, what is love?", "Respond as Einstein: what is love?"),
    ("Write a bedtime story for a toddler about a dragon.", "Tell a toddler a bedtime story about a dragon.", "Write a bedtime story for adults about a dragon."),
    ("Explain the theory of relativity at a high school level.", "Explain relativity theory for high school students.", "Explain the theory of relativity at a graduate level."),
    ("yo whats the capital of spain", "Could you kindly tell me what the capital of Spain is?", "yo whats the capital of portugal"),
    ("hey can u explain how a car engine works", "Please explain how a car engine works.", "hey can u explain how a car engine works, super technical pls"),
    ("how do i renew my passport", "Kindly advise on the procedure for renewing my passport.", "how do i renew my passport, explain like im a kid"),
    ("gimme a quick rundown of the cold war", "Could you provide an overview of the Cold War?", "gimme a detailed rundown of the cold war"),
    ("I would be grateful if you could explain inflation.", "explain inflation pls", "I would be grateful if you could explain inflation formally, for economists."),
    ("wat does DNA stand for lol", "What does the acronym DNA stand for?", "wat does RNA stand for lol"),
    ("Would you be so kind as to recommend a thriller novel?", "recommend me a thriller novel", "Would you be so kind as to recommend a thriller novel for kids?"),
    ("Dear assistant, please describe how photosynthesis works.", "how does photosynthesis work??", "Dear assistant, please describe how photosynthesis works at an advanced level."),
    ("whats the diff between a virus and bacteria", "What is the difference between a virus and bacteria?", "whats the diff between a virus and bacteria, explain it to a child"),
    ("sup, how do magnets work", "How do magnets work?", "sup, how do magnets work, in technical terms"),
    ("Could you please tell me how many continents there are?", "how many continents r there", "Could you please tell me how many oceans there are?"),
    ("I was wondering whether you might explain how interest rates affect inflation.", "how do interest rates affect inflation", "I was wondering whether you might explain how interest rates affect unemployment."),
    ("Please tell me a joke about programmers.", "tell me a programmer joke", "Please tell me a serious fact about programmers."),
]

TEMPORAL = [
    ("What's the weather in Paris today?", "How is the weather in Paris today?", "What's the weather in Paris tomorrow?"),
    ("Who won the World Cup in 2018?", "Which country won the 2018 World Cup?", "Who won the World Cup in 2022?"),
    ("What events are happening in London this weekend?", "What's on in London this weekend?", "What events are happening in London next weekend?"),
    ("What time does the stock market open on Monday?", "When does the stock market open on Monday?", "What time does the stock market open on Saturday?"),
    ("Give me a summary of yesterday's news.", "Summarize the news from yesterday.", "Give me a summary of today's news."),
    ("What should I plant in spring?", "Which plants should I sow in spring?", "What should I plant in autumn?"),
    ("How cold does it get in Moscow in January?", "How cold are January temperatures in Moscow?", "How cold does it get in Moscow in July?"),
    ("What happened on September 11, 2001?", "What events took place on 11 September 2001?", "What happened on September 11, 1973?"),
    ("What should I eat in the morning before a run?", "What's a good thing to eat in the morning before running?", "What should I eat in the evening before a run?"),
    ("What are the latest developments in AI?", "What has happened in AI recently?", "What were the earliest developments in AI?"),
    ("How many days until Christmas?", "How many days are left until Christmas?", "How many weeks until Christmas?"),
    ("Book a table for dinner tonight.", "Reserve a dinner table for tonight.", "Book a table for dinner tomorrow night."),
    ("What was the price of Bitcoin last week?", "How much did Bitcoin cost last week?", "What was the price of Bitcoin last year?"),
    ("Is the museum open on Sundays?", "Does the museum open on Sunday?", "Is the museum open on Tuesdays?"),
    ("Summarize the quarterly earnings report.", "Give a summary of the quarterly earnings report.", "Summarize the annual earnings report."),
    ("What is the dollar to euro exchange rate right now?", "What's the current dollar to euro exchange rate?", "What was the dollar to euro exchange rate in 2010?"),
    ("Remind me to call mom at 5 pm.", "Set a reminder to call mom at 5pm.", "Remind me to call mom at 5 am."),
    ("What are the best things to do in Rome in summer?", "What's best to do in Rome during the summer?", "What are the best things to do in Rome in winter?"),
    ("Who was the president of the United States in 1990?", "In 1990, who was the president of the United States?", "Who was the president of the United States in 1995?"),
    ("What's on TV tonight?", "What TV shows are on tonight?", "What's on TV this afternoon?"),
    ("Schedule a meeting for Friday at 10.", "Set a meeting on Friday at 10.", "Schedule a meeting for Thursday at 10."),
    ("What was the hottest year on record?", "Which year was the hottest ever recorded?", "What was the hottest month on record?"),
    ("How much should I save each month?", "What amount should I put aside monthly?", "How much should I save each week?"),
    ("Make a plan for my evening workout.", "Plan my evening workout.", "Plan my morning workout."),
    ("What were the top news stories yesterday?", "Which news stories were biggest yesterday?", "What were the top news stories last month?"),
]

# General pairs no guard targets: paraphrases, and questions on the same topic that ask something else.
PARAPHRASES = [
    ("How do I make cold brew coffee?", "What's the method for making cold brew coffee?"),
    ("What causes earthquakes?", "Why do earthquakes happen?"),
    ("How do I get rid of fruit flies?", "What's the best way to eliminate fruit flies?"),
    ("Explain how a blockchain works.", "How does a blockchain work?"),
    ("What is the difference between affect and effect?", "How do affect and effect differ?"),
    ("How do I improve my sleep quality?", "What can I do to sleep better?"),
    ("Why do cats purr?", "What makes cats purr?"),
    ("How can I learn to play guitar?", "What's a good way to start learning guitar?"),
    ("What is inflation?", "Can you explain what inflation is?"),
    ("How do I remove a stain from a carpet?", "How can I get a stain out of carpet?"),
    ("What are good exercises for lower back pain?", "Which exercises help with lower back pain?"),
    ("How does a refrigerator keep food cold?", "How do fridges keep food cold?"),
    ("What is a black hole?", "Can you explain what black holes are?"),
    ("How do I write a good cover letter?", "What makes a cover letter good?"),
    ("Why is exercise important?", "Why does exercise matter?"),
    ("How do airplanes stay in the air?", "What keeps an airplane in the air?"),
    ("How do I deal with stress at work?", "What are ways to cope with stress at work?"),
    ("What should I consider when buying a used car?", "What should I look for when buying a used car?"),
    ("How do vaccines train the immune system?", "How does a vaccine teach the immune system?"),
    ("What is the purpose of a firewall?", "What does a firewall do?"),
    ("How do I negotiate a higher salary?", "How can I ask for a higher salary?"),
    ("What's a healthy breakfast?", "What should I eat for a healthy breakfast?"),
    ("How do solar panels generate electricity?", "How do solar panels produce electricity?"),
    ("What is a good way to memorize vocabulary?", "How can I memorize vocabulary effectively?"),
    ("How do I clean a cast iron pan?", "What's the right way to clean a cast-iron skillet?"),
    ("What is the greenhouse effect?", "Explain the greenhouse effect."),
    ("How do I keep my houseplants alive?", "How can I stop my houseplants from dying?"),
    ("What is object-oriented programming?", "Can you explain object-oriented programming?"),
    ("How do I prepare for a job interview?", "What should I do to get ready for a job interview?"),
    ("Why do leaves change color?", "What makes leaves change color?"),
    ("How do noise-cancelling headphones work?", "What's the technology behind noise-cancelling headphones?"),
    ("How can I save money on groceries?", "What are ways to spend less on groceries?"),
    ("What is the role of mitochondria?", "What do mitochondria do?"),
    ("How do I unclog a drain?", "What's the way to unclog a drain?"),
    ("How do tides work?", "What causes the tides?"),
    ("Explain supply and demand.", "What is supply and demand?"),
    ("How do I start running as a beginner?", "How should a beginner get into running?"),
    ("What is a good gift for a coworker?", "What should I get a coworker as a gift?"),
    ("How does compound interest work?", "Can you explain compound interest?"),
    ("Why is the ocean salty?", "What makes seawater salty?"),
]

RELATED_BUT_DIFFERENT = [
    ("How do I bake sourdough bread?", "How do I store sourdough bread?"),
    ("What causes migraines?", "How are migraines treated?"),
    ("How do I learn to swim?", "How do I teach my son to swim?"),
    ("What is a mortgage?", "What is a reverse mortgage?"),
    ("How do I change a flat tire?", "How do I check tire pressure?"),
    ("What do cats eat?", "What do rabbits eat?"),
    ("How do I write a resume?", "How do I format a resume?"),
    ("What is the function of the liver?", "What is the function of the kidneys?"),
    ("How do I make pasta sauce?", "How do I make pasta dough?"),
    ("What causes inflation?", "What causes unemployment?"),
    ("How do I become a nurse?", "How do I become a doctor?"),
    ("What is a stock?", "What is a bond?"),
    ("How do I paint a room?", "How do I wallpaper a room?"),
    ("What is photosynthesis?", "What is cellular respiration?"),
    ("How do I grow tomatoes?", "How do I grow potatoes?"),
    ("How does a microwave oven heat food?", "How does a convection oven heat food?"),
    ("What is the treatment for a sprained ankle?", "What is the treatment for a broken ankle?"),
    ("How do I train my dog to sit?", "How do I train my dog to stay?"),
    ("How do I reset my router?", "How do I update my router's firmware?"),
    ("How do I make an omelette?", "How do I make scrambled eggs?"),
    ("What is a prime number?", "What is a perfect number?"),
    ("How do I cancel my subscription?", "How do I pause my subscription?"),
    ("How do I write a for loop?", "How do I write a while loop?"),
    ("What is a noun?", "What is a verb?"),
    ("How do I quit smoking?", "How do I quit drinking?"),
    ("What is the treatment for the flu?", "What is the treatment for the common cold?"),
    ("How do I roast a chicken?", "How do I roast a turkey?"),
    ("What are symptoms of dehydration?", "What are symptoms of heatstroke?"),
    ("How do I apply for a passport?", "How do I apply for a visa?"),
    ("How do I delete a git branch?", "How do I rename a git branch?"),
]

# Template swaps: the same question about another thing, number or time.
COUNTRIES = ["France", "Germany", "Spain", "Italy", "Japan", "Brazil", "Kenya", "Canada", "India", "Norway", "Egypt", "Peru"]
ENTITY_TEMPLATES = [
    ("What is the national dish of {x}?", "Which dish is considered {x}'s national dish?"),
    ("What is the official language of {x}?", "Which language is official in {x}?"),
    ("How big is the army of {x}?", "What is the size of {x}'s army?"),
    ("What is the climate like in {x}?", "Describe the climate of {x}."),
]
NUMBER_TEMPLATES = [
    ("What is {x} divided by 4?", "Divide {x} by 4.", [48, 52, 60, 100, 36]),
    ("Convert {x} kilometers to miles.", "How many miles is {x} kilometers?", [5, 10, 21, 42, 100]),
    ("How many hours is {x} minutes?", "Convert {x} minutes to hours.", [90, 120, 150, 200, 45]),
]
TIME_TEMPLATES = [
    ("What's the forecast for {x} in Seattle?", "How's the weather looking for {x} in Seattle?",
     ["today", "tomorrow", "this weekend", "next week", "Monday"]),
    ("Which restaurants are open on {x}?", "What restaurants open on {x}?",
     ["Sunday", "Christmas Eve", "New Year's Day", "Monday", "Friday"]),
]


def _triples(rows, family):
    for a, same, other in rows:
        yield {"a": a, "b": same, "same": True, "family": family}
        yield {"a": a, "b": other, "same": False, "family": family}


def build() -> list[dict]:
    pairs: list[dict] = []
    for rows, family in ((ENTITY, "entity"), (FORMAT, "format"), (LANGUAGE, "language"), (NEGATION, "negation"),
                         (NUMERIC, "numeric"), (POLARITY, "polarity"), (REGISTER, "register"), (TEMPORAL, "temporal")):
        pairs.extend(_triples(rows, family))
    pairs += [{"a": a, "b": b, "same": True, "family": None} for a, b in PARAPHRASES]
    pairs += [{"a": a, "b": b, "same": False, "family": None} for a, b in RELATED_BUT_DIFFERENT]
    rng = random.Random(7)
    for a_t, b_t in ENTITY_TEMPLATES:
        for x, y in rng.sample(list(itertools.permutations(COUNTRIES, 2)), 3):
            pairs.append({"a": a_t.format(x=x), "b": b_t.format(x=x), "same": True, "family": "entity"})
            pairs.append({"a": a_t.format(x=x), "b": a_t.format(x=y), "same": False, "family": "entity"})
    for a_t, b_t, values in NUMBER_TEMPLATES:
        for x, y in zip(values, values[1:] + values[:1]):
            pairs.append({"a": a_t.format(x=x), "b": b_t.format(x=x), "same": True, "family": "numeric"})
            pairs.append({"a": a_t.format(x=x), "b": a_t.format(x=y), "same": False, "family": "numeric"})
    for a_t, b_t, values in TIME_TEMPLATES:
        for x, y in zip(values, values[1:] + values[:1]):
            pairs.append({"a": a_t.format(x=x), "b": b_t.format(x=x), "same": True, "family": "temporal"})
            pairs.append({"a": a_t.format(x=x), "b": a_t.format(x=y), "same": False, "family": "temporal"})
    return pairs


def main() -> None:
    out = Path(__file__).with_name("semantic_cache_pairs.jsonl")
    pairs = build()
    with open(out, "w", encoding="utf-8") as f:
        for p in pairs:
            f.write(json.dumps(p, ensure_ascii=False) + "\n")
    print(f"wrote {len(pairs)} pairs to {out}")


if __name__ == "__main__":
    main()
